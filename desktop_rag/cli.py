"""The command-line interface: a thin client of :class:`desktop_rag.core.engine.Engine`."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import click

from desktop_rag.api.cli import serve
from desktop_rag.core.errors import MissingExtraError, UserError
from desktop_rag.core.types import Answer, FileResult, IndexSummary

log = logging.getLogger("desktop_rag.cli")


def _engine():  # type: ignore[no-untyped-def]
    from desktop_rag.core.engine import Engine

    return Engine()


class ErrorHandlingGroup(click.Group):
    """The root command group: the one place where errors become messages.

    A :class:`UserError` (the library's error family: a person can fix it) prints its message and
    hint; any other exception is a bug: its traceback goes to the log file and the user gets one
    line naming that file. Both exit with status 1. click's own exceptions (usage errors, exits,
    aborts) and ``SystemExit`` pass through unchanged.
    """

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command line; see the class docstring for what becomes of its errors."""
        try:
            return super().invoke(ctx)
        except UserError as err:
            raise click.ClickException(str(err)) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            raise click.ClickException(_unexpected(exc)) from None


def _unexpected(exc: Exception) -> str:
    """Log ``exc`` with its traceback and return the one-line message that names the log file."""
    from desktop_rag.logs import current_log_file, error_summary, setup_logging, where_logged

    log_file = current_log_file()
    if log_file is None:  # the error came before (or from) setting up the log
        with contextlib.suppress(Exception):
            log_file = setup_logging()
    log.error("unexpected error in `desktop-rag %s`", " ".join(sys.argv[1:]), exc_info=exc)
    return f"unexpected error ({error_summary(exc)}); {where_logged(log_file)}"


@click.group(cls=ErrorHandlingGroup, invoke_without_command=True)
@click.option("-v", "--verbose", is_flag=True, help="Log debug details to the log file.")
@click.option(
    "--debug",
    is_flag=True,
    help="Open the app with its debugging aids: GUI-thread stalls over 100 ms are logged with "
    "the line that stalled (also DESKTOP_RAG_DEBUG=1).",
)
@click.version_option(package_name="desktop-rag")
@click.pass_context
def cli(ctx: click.Context, verbose: bool, debug: bool) -> None:
    """desktop-rag: ask questions about your own documents, offline, with page citations.

    With no command, opens the desktop app.
    """
    from desktop_rag.logs import setup_logging

    setup_logging(verbose or debug)
    if ctx.invoked_subcommand is None:
        try:
            from desktop_rag.gui.app import run
        except ImportError as exc:
            raise click.ClickException(
                f"the desktop app needs PySide6 ({exc}); install desktop-rag[gui], "
                "or use the commands below:\n" + ctx.get_help()
            ) from None
        sys.exit(run(debug=True if debug else None))


def _print_problems(problems: list[FileResult]) -> None:
    if not problems:
        return
    click.echo(f"\n{len(problems)} file(s) not indexed:")
    shown = 0
    for p in problems:
        if shown < 30:
            click.echo(f"  {p.status:8} {p.path}: {p.reason}")
        shown += 1
    if shown > 30:
        counts = Counter(f"{p.status}: {p.reason}" for p in problems)
        click.echo("  ... and more; by reason:")
        for reason, n in counts.most_common(10):
            click.echo(f"  {n:6}  {reason}")


def _index_json(summary: IndexSummary, exit_code: int) -> dict[str, Any]:
    """The ``index --json`` object: the run's counts (files by outcome, pages, chunks, OCR),
    its seconds, each file not indexed with its reason, and the exit status."""
    by_status = Counter(p.status for p in summary.problems)
    return {
        "indexed": summary.indexed,
        "unchanged": summary.unchanged,
        "removed": summary.removed,
        "skipped": by_status.get("skipped", 0),
        "failed": by_status.get("failed", 0),
        "files_total": summary.files_total,
        "pages": summary.pages,
        "chunks_added": summary.chunks_added,
        "ocr_pages": summary.ocr_pages,
        "elapsed_s": round(summary.elapsed_s, 3),
        "problems": [
            {"path": p.path, "status": p.status, "reason": p.reason} for p in summary.problems
        ],
        "exit_code": exit_code,
    }


def _index_exit_code(summary: IndexSummary) -> int:
    """0 when the run did what it could (files indexed or already up to date, deletions
    applied, an empty folder, also when some files failed beside them); 1 when it could use
    none of its inputs: every file it was given failed or was skipped."""
    usable = summary.indexed or summary.unchanged or summary.removed
    return 1 if summary.problems and not usable else 0


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the counts.")
def index(paths: tuple[Path, ...], as_json: bool) -> None:
    """Index folders (and files) so their documents can be searched.

    Running it again only processes new and changed files, removes deleted ones, and resumes an
    interrupted run. Exits 0 when it indexed (or found up to date) what it was given, also when
    some files failed beside others (the last line says how many); 1 when none of the files could
    be indexed; 2 when none of the paths exists (before anything loads).
    """
    missing = [p for p in paths if not p.expanduser().exists()]
    if len(missing) == len(paths):
        for p in missing:
            click.echo(f"failed   {p}: no such file or folder", err=True)
        if as_json:
            problems = [FileResult(str(p), "failed", "no such file or folder") for p in missing]
            click.echo(json.dumps(_index_json(IndexSummary(problems=problems), 2)))
        sys.exit(2)

    from tqdm import tqdm

    from desktop_rag.core.types import CancelToken

    cancel = CancelToken()
    engine = _engine()
    bar = None
    summary: IndexSummary | None = None
    try:
        click.echo(f"Loading the embedding model {engine.embedding_model.name}...", err=True)
        gen = engine.index(list(paths), cancel)
        while True:
            try:
                prog = next(gen)
            except StopIteration as stop:
                summary = stop.value
                break
            if bar is None:
                bar = tqdm(
                    total=prog.files_total,
                    initial=prog.files_done,
                    unit="file",
                    desc="Indexing",
                    dynamic_ncols=True,
                    file=sys.stderr,
                )
            bar.update(prog.files_done - bar.n)
            if prog.result is None and prog.current:  # OCR of a scan: a page every few seconds
                bar.set_postfix_str(prog.current[-60:])
            else:
                bar.set_postfix(chunks=prog.chunks_added, ocr_pages=prog.ocr_pages,
                                file=prog.current[:30], refresh=False)  # fmt: skip
    except KeyboardInterrupt:
        cancel.cancel()
        with contextlib.suppress(StopIteration, KeyboardInterrupt):
            gen.throw(KeyboardInterrupt)
        click.echo(
            "\nInterrupted: everything indexed so far is kept; run the same command to resume.",
            err=True,
        )
        sys.exit(130)
    finally:
        if bar is not None:
            bar.close()
        engine.close()
    assert summary is not None
    code = _index_exit_code(summary)
    if as_json:
        click.echo(json.dumps(_index_json(summary, code)))
        if code:
            sys.exit(code)
        return
    _print_problems(summary.problems)
    if summary.ocr_pages:
        click.echo(
            f"Text recognition (OCR): {summary.ocr_pages} scanned page(s) in "
            f"{summary.ocr_s:.1f} s ({summary.ocr_pages / max(summary.ocr_s, 1e-9):.2f} pages/s)."
        )
    rate = summary.pages / summary.elapsed_s if summary.elapsed_s else 0.0
    line = (
        f"Indexed {summary.indexed} file(s) ({summary.pages} pages, {summary.chunks_added} chunks) "
        f"in {summary.elapsed_s:.1f} s ({rate:.1f} pages/s); {summary.unchanged} unchanged, "
        f"{summary.removed} removed"
    )
    if summary.problems:
        by_status = Counter(p.status for p in summary.problems)
        line += (f"; {len(summary.problems)} not indexed ({by_status.get('skipped', 0)} skipped, "
                 f"{by_status.get('failed', 0)} failed: listed above)")  # fmt: skip
    if code:
        line += "; nothing could be indexed"
    click.echo(line + ".")
    if code:
        sys.exit(code)


@cli.command()
@click.argument("question", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.option(
    "-k", "--top-k", type=int, default=None, help="Number of sources (default: settings)."
)
@click.option(
    "--adapter",
    default=None,
    metavar="NAME",
    help="Answer in the style of this LoRA adapter (see `desktop-rag adapters`).",
)
@click.option(
    "--adapter-scale",
    type=click.FloatRange(0.0, 1.5),
    default=1.0,
    show_default=True,
    help="Adapter strength (LoRA scale, 0 to 1.5).",
)
@click.option(
    "--model",
    "model",
    default=None,
    help="Answer with this model or inference server (see `desktop-rag models`) instead of the "
    "selected one, for this question only.",
)
def ask(
    question: tuple[str, ...],
    as_json: bool,
    top_k: int | None,
    adapter: str | None,
    adapter_scale: float,
    model: str | None,
) -> None:
    """Answer a QUESTION from the indexed documents, with numbered sources.

    Prints the answer as Copy answer in the window gives it (the evidence quoted as soon as it
    is found, then the checked answer with unsupported figures, names and sentences marked, and
    the sources by page, slide or row), then the timings. The model's unchecked text is not
    printed while it is written: a terminal shows a count on stderr instead.
    """
    from desktop_rag.core.answer_text import evidence_text
    from desktop_rag.core.types import CancelToken, EvidenceFound

    text = " ".join(question).strip()
    if not text:
        raise click.UsageError("the question is empty")
    cancel = CancelToken()
    engine = _engine()
    final: Answer | None = None
    shown_evidence = ""
    err = sys.stderr
    live = not as_json and err.isatty()
    written = 0  # pieces of text the model has written (the terminal's count)
    try:
        if model is not None:
            engine.set_llm_model(model)  # this run only: the settings file is not written
        engine.require_indexed()
        for item in engine.ask(
            text, k=top_k, cancel=cancel, adapter=adapter, adapter_scale=adapter_scale
        ):
            if isinstance(item, Answer):
                final = item
            elif isinstance(item, EvidenceFound):
                if not as_json:
                    shown_evidence = evidence_text([e.to_json() for e in item.evidence])
                    if shown_evidence:
                        click.echo(shown_evidence + "\n")
            elif live:
                written += 1
                err.write(f"\rWriting the answer… {written} pieces")
                err.flush()
    except KeyboardInterrupt:
        cancel.cancel()
        click.echo("\n[stopped]", err=True)
        sys.exit(130)
    finally:
        if live and written:
            err.write("\r\033[K")
            err.flush()
        engine.close()
    assert final is not None
    if as_json:
        click.echo(json.dumps(final.to_json(), ensure_ascii=False))
        if final.error:
            sys.exit(1)
        return
    for w in final.warnings:
        click.echo(f"Warning: {w}", err=True)
    _print_answer(final, shown_evidence)
    if final.error:  # the evidence is printed; the answer the model was asked for is not
        sys.exit(1)
    t = final.timings
    style = f", style {final.adapter} x{final.adapter_scale:g}" if final.adapter else ""
    click.echo(
        f"\n(retrieval {t.retrieval_ms:.0f} ms, first token {t.ttft_s:.2f} s, "
        f"{t.tokens_per_s:.0f} tokens/s{style})"
    )


def _print_answer(answer: Answer, printed_evidence: str = "") -> None:
    """Print ``answer`` as :func:`~desktop_rag.core.answer_text.answer_text` renders it (plain
    text, 110 characters of each source), leaving out its evidence block when it is
    ``printed_evidence`` (printed already, as soon as it was found)."""
    from desktop_rag.core.answer_text import answer_json_text

    shown = answer_json_text(answer, snippet_chars=110)
    if shown.evidence and shown.evidence != printed_evidence:
        click.echo(shown.evidence + "\n")
    click.echo(shown.body)
    if shown.sources:
        click.echo("\n" + shown.sources)


@cli.command()
@click.argument("target")
@click.option(
    "--length",
    type=click.Choice(["short", "medium", "long"]),
    default="medium",
    show_default=True,
    help="About 5, 10 or 20 sentences.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def summarize(target: str, length: str, as_json: bool) -> None:
    """Summarise TARGET: an indexed file (its path or file name) or an indexed folder.

    Every sentence cites its file and page and is claim-checked as answers are; with
    answer_style "evidence" (or when the model's summary fails the check) the summary is the
    document's most central sentences, quoted. Progress goes to stderr.
    """
    from desktop_rag.core.generate.owner import Priority
    from desktop_rag.core.tasks.summarize import Summary, SummaryProgress, summary_progress_text
    from desktop_rag.core.tasks.summarize import summarize as summarize_target
    from desktop_rag.core.types import CancelToken

    cancel = CancelToken()
    engine = _engine()
    final: Summary | None = None
    err = sys.stderr
    live = err.isatty()
    try:
        engine.require_indexed()
        # A person waits for the command: interactive priority.
        events = summarize_target(engine, target, length=length, cancel=cancel,
                                  priority=Priority.INTERACTIVE)  # fmt: skip
        for item in events:
            if isinstance(item, Summary):
                final = item
            elif isinstance(item, SummaryProgress) and live:
                err.write("\r\033[K" + summary_progress_text(item))
                err.flush()
    except KeyboardInterrupt:
        cancel.cancel()
        click.echo("\n[stopped]", err=True)
        sys.exit(130)
    finally:
        if live:
            err.write("\r\033[K")
            err.flush()
        engine.close()
    assert final is not None
    if as_json:
        click.echo(json.dumps(final.to_json(), ensure_ascii=False))
        return
    if final.note:
        click.echo(f"Note: {final.note}", err=True)
    _print_answer(final.as_answer())
    t = final.timings
    click.echo(f"\n({len(final.sentences)} sentences from {len(final.files)} file(s); "
               + ", ".join(f"{k.removesuffix('_s')} {v:.1f} s" for k, v in t.items()) + ")")  # fmt: skip


@cli.command()
@click.argument("a")
@click.argument("b")
@click.option("--aspect", default=None, help='Compare only this aspect ("revenue").')
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of Markdown.")
def compare(a: str, b: str, aspect: str | None, as_json: bool) -> None:
    """Compare two indexed documents A and B (paths or file names): what both say, what only
    one says, and the line items whose current-period figures differ, each cited by file and
    page. Printed as Markdown (or --json). No model runs: any backend, instant on re-runs."""
    from desktop_rag.core.tasks.compare import CompareProgress, Comparison
    from desktop_rag.core.tasks.compare import compare as compare_documents
    from desktop_rag.core.types import CancelToken

    cancel = CancelToken()
    engine = _engine()
    final: Comparison | None = None
    err = sys.stderr
    live = err.isatty()
    try:
        engine.require_indexed()
        for item in compare_documents(engine, a, b, aspect=aspect, cancel=cancel):
            if isinstance(item, Comparison):
                final = item
            elif isinstance(item, CompareProgress) and live:
                left = f", about {item.eta_s:.0f} s left" if item.eta_s is not None else ""
                err.write(f"\r\033[K{item.stage} {item.done}/{item.total}{left}")
                err.flush()
    except KeyboardInterrupt:
        cancel.cancel()
        click.echo("\n[stopped]", err=True)
        sys.exit(130)
    finally:
        if live:
            err.write("\r\033[K")
            err.flush()
        engine.close()
    assert final is not None
    click.echo(json.dumps(final.to_json(), ensure_ascii=False) if as_json else final.to_markdown())


@cli.command("eval")
@click.option(
    "--docs",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="Folder of documents (indexed first; an existing index is reused).",
)
@click.option(
    "--questions",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="JSONL questions: id, question, answer, evidence [{doc, page, text}].",
)
@click.option(
    "--k", "k", type=int, default=5, show_default=True, help="Cut-off for the hit@k metrics."
)
@click.option(
    "--modes",
    default="default",
    show_default=True,
    help="Comma-separated retrieval modes to compare: default, hybrid, fused, dense, bm25, rrf.",
)
@click.option("--generate", is_flag=True, help="Also answer with the LLM and grade the answers.")
@click.option(
    "--limit", type=int, default=None, help="With --generate: answer only the first N questions."
)
@click.option(
    "--ooc",
    "ooc_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Questions whose answers are NOT in DOCS (e.g. another set's): they should abstain.",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the report as JSON."
)
def eval_cmd(docs: Path, questions: Path, k: int, modes: str, generate: bool, limit: int | None,
             ooc_file: Path | None, out: Path | None) -> None:  # fmt: skip
    """Measure retrieval (and answer) quality on a question set with gold evidence."""
    from tqdm import tqdm

    from desktop_rag.core.evaluation import Question, format_report, load_questions, run_eval

    engine = _engine()
    bar = tqdm(total=0, unit="q", desc="Evaluating", file=sys.stderr, dynamic_ncols=True)

    def progress(done: int, total: int) -> None:
        if bar.total != total:
            bar.reset(total=total)
        bar.update(done - bar.n)

    try:
        qs = load_questions(questions)
        ooc = (
            [Question(q.id, q.question, None, ()) for q in load_questions(ooc_file)]
            if ooc_file
            else []
        )
        click.echo(f"Indexing {docs} (reusing the existing index)...", err=True)
        report = run_eval(engine, docs, qs, k=k, modes=[m.strip() for m in modes.split(",") if m.strip()],
                          generate=generate, limit=limit, ooc=ooc, progress=progress)  # fmt: skip
    finally:
        bar.close()
        engine.close()
    click.echo(format_report(report))
    if out:
        out.write_text(json.dumps(report, indent=2))
        click.echo(f"\nReport written to {out}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(as_json: bool) -> None:
    """Show the collections, files, chunks and models."""
    from desktop_rag.core.models import list_models

    engine = _engine()
    try:
        cols = engine.store.collections()
        ident = engine.store.stored_identity()
        index = engine.store.identity_report()
        models = list_models()
        try:  # the selected embedding model's thresholds (its folder is read, not loaded)
            thresholds: dict[str, object] | None = engine.thresholds().to_json()
        except UserError as err:
            thresholds = None
            log.warning("no abstention thresholds: %s", err)
        backend = _backend_json(engine)
        try:
            selected: str | None = engine.embedding_model.name
            reembed = engine.needs_reembedding()
        except UserError as err:
            selected, reembed = None, False
            log.warning("no embedding model: %s", err)
        data = {
            "data_dir": str(engine.paths.data),
            "backend": backend,
            "collections": [c.__dict__ for c in cols],
            # Per file: whether it is a financial filing or report (the filing rules apply to
            # those only) and what in its text said so (core/text/filings.py).
            "files": [
                {
                    "path": f.path,
                    "collection_id": f.collection_id,
                    "status": f.status,
                    "genre": f.genre,
                    "genre_basis": f.genre_basis,
                }
                for f in engine.store.files()
            ],
            "chunks": engine.store.chunk_count(),
            "embedding_model": ident,
            "embedding": {
                "selected": selected,
                "setting": engine.settings.embedding_model,
                "needs_reembedding": reembed,
                "fallback": engine.embedding_fallback,
            },
            "index": index,
            "thresholds": thresholds,
            "models": [_model_json(m) for m in models],
        }
    finally:
        engine.close()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"Data: {engine.paths.data}")
    if not cols:
        click.echo("No collections yet: run `desktop-rag index FOLDER`.")
    for c in cols:
        click.echo(
            f"  [{c.id}] {c.root}: {c.files} files, {c.indexed} indexed, {c.problems} not "
            f"indexed, {c.chunks} chunks"
        )
    if ident:
        click.echo(f"Index embedding model: {ident.get('name')} ({ident.get('dim')} dimensions)")
    click.echo(f"Selected embedding model: {selected}"
               + (" (the next `desktop-rag index` embeds every chunk again with it)"
                  if reembed else ""))  # fmt: skip
    if engine.embedding_fallback:
        click.echo(f"Warning: {engine.embedding_fallback}", err=True)
    click.echo(f"Chunks: {data['chunks']}")
    settings = index["index_settings"] or {}
    chunker = settings.get("chunker") if isinstance(settings, dict) else None
    analysis = index["analysis"]
    assert isinstance(analysis, dict)
    click.echo(
        f"Index format {index['schema_version']}, search analysis version {analysis['version']}"
        + (f" ({analysis['stale']} chunks to update at the next indexing run)"
           if analysis["stale"] else "")
        + (", read-only" if index["read_only"] else "")
    )  # fmt: skip
    if isinstance(chunker, dict):
        click.echo(f"Chunks of at most {chunker.get('chunk_tokens')} word pieces, "
                   f"{chunker.get('overlap_tokens')} overlapping")  # fmt: skip
    if thresholds is not None:
        click.echo(
            f"Abstention thresholds: relevance {thresholds['min_relevance']}, lexical "
            f"{thresholds['min_relevance_lexical']} with {thresholds['min_term_coverage']} of "
            "the words ("
            + ("set in the settings" if thresholds["source"] == "settings"
               else f"calibrated for {thresholds['calibrated_for']}")
            + ")"
        )  # fmt: skip
        if thresholds["warning"]:
            click.echo(f"Warning: {thresholds['warning']}", err=True)
    for m in models:
        click.echo(f"Model ({m.kind}{', bundled' if m.bundled else ''}): {m.name}"
                   + (f" (server {m.server.url}, model {m.server.model})" if m.server else ""))  # fmt: skip
    click.echo(f"Answers come from: {backend['label']}")
    if backend["warning"]:
        click.echo(f"Warning: {backend['warning']}", err=True)


def _backend_json(engine: Any) -> dict[str, Any]:
    """Which generation backend answers (nothing is loaded or contacted): ``kind`` "local" or
    "server", ``label``, ``url`` (None for local) and the address ``warning`` of a server that
    is neither loopback nor on a private network."""
    from desktop_rag.core.servers import address_warning

    try:
        info = engine.llm_model
    except UserError as err:
        return {"kind": None, "label": f"no model ({err.message})", "url": None, "warning": None}
    server = info.server
    return {
        "kind": "server" if server else "local",
        "name": info.name,
        "label": info.label,
        "url": server.url if server else None,
        "warning": address_warning(server.url) if server else None,
    }


def _model_json(m: Any) -> dict[str, Any]:
    """One model of ``models --json`` / ``status --json`` (a server's URL, model name, timeout
    and context window; never its key)."""
    out: dict[str, Any] = {"name": m.name, "kind": m.kind, "path": str(m.path),
                           "bundled": m.bundled, "bytes": m.bytes}  # fmt: skip
    if m.server is not None:
        s = m.server
        out["server"] = {"url": s.url, "model": s.model, "timeout_s": s.timeout_s,
                         "context": s.context, "api_key": s.has_key}  # fmt: skip
    return out


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def models(ctx: click.Context, as_json: bool) -> None:
    """List the models: bundled, in the models folder, and the inference servers added."""
    if ctx.invoked_subcommand is not None:
        return
    from desktop_rag.core.models import list_models
    from desktop_rag.core.paths import app_paths

    found = list_models()
    if as_json:
        click.echo(json.dumps([_model_json(m) for m in found], indent=2))
        return
    for m in found:
        where = f"server {m.server.url}, model {m.server.model}" if m.server else str(m.path)
        size = "" if m.server else f"{m.bytes / 1e6:8.1f} MB"
        click.echo(f"{m.kind:9} {m.name:32} {size:>11}  {'bundled' if m.bundled else ''}  {where}")
    click.echo(
        f"\nAdd your own: put .gguf files or sentence-transformers folders in "
        f"{app_paths().models_dir}, or add an inference server with `desktop-rag models "
        "add-server`"
    )


@models.command("add-server")
@click.argument("name")
@click.option(
    "--url", required=True, help="The server's OpenAI API base, e.g. http://10.0.0.5:8080/v1."
)
@click.option(
    "--model", "model", required=True, help="The model name the server's /v1/models lists."
)
@click.option(
    "--api-key-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A file holding the API key (copied into the app's user-only key store).",
)
@click.option("--timeout", type=click.FloatRange(1, 3600), default=None,
              help="Seconds to wait for the server (default 60).")  # fmt: skip
@click.option("--context", type=click.IntRange(512, 1_048_576), default=None,
              help="The model's context window in tokens (default 4096).")  # fmt: skip
@click.option("--use", is_flag=True, help="Also select it to answer from now on.")
def models_add_server(
    name: str,
    url: str,
    model: str,
    api_key_file: Path | None,
    timeout: float | None,
    context: int | None,
    use: bool,
) -> None:
    """Add an OpenAI-compatible inference server (llama-server, llama_cpp.server, vLLM, Ollama,
    LM Studio) as a model NAME. Nothing is contacted now; `ask --model NAME` uses it."""
    from desktop_rag.core.models import add_server_model
    from desktop_rag.core.servers import DEFAULT_CONTEXT, DEFAULT_TIMEOUT_S, address_warning

    key = None
    if api_key_file is not None:
        try:
            key = api_key_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise click.ClickException(f"cannot read {api_key_file}: {exc}") from None
    info = add_server_model(name, url, model, api_key=key,
                            timeout_s=timeout or DEFAULT_TIMEOUT_S,
                            context=context or DEFAULT_CONTEXT)  # fmt: skip
    assert info.server is not None
    click.echo(f"Added {info.label}" + (" with an API key" if key is not None else ""))
    warning = address_warning(info.server.url)
    if warning:
        click.echo(f"Warning: {warning}", err=True)
    if use:
        _select_llm(name)


@models.command("remove-server")
@click.argument("name")
def models_remove_server(name: str) -> None:
    """Remove the inference server NAME (and its stored API key)."""
    from desktop_rag.core.servers import remove_server

    if not remove_server(name):
        raise click.ClickException(f"no server named {name!r}")
    click.echo(f"Removed server {name}")


@models.command("use")
@click.argument("name")
def models_use(name: str) -> None:
    """Answer with the model or server NAME from now on ("default": the bundled model)."""
    _select_llm(None if name == "default" else name)


@models.command("use-embedding")
@click.argument("name")
@click.option("--now/--later", default=True, show_default=True,
              help="Embed the indexed chunks again now, or at the next `desktop-rag index`.")  # fmt: skip
def models_use_embedding(name: str, now: bool) -> None:
    """Index with the embedding model NAME from now on ("default": the bundled
    all-MiniLM-L6-v2; "multilingual-e5-small": 100 languages, Linux x86-64). The index records
    its model: the chunks already indexed are embedded again with NAME (nothing is extracted
    again; an index never mixes two models' vectors)."""
    from tqdm import tqdm

    from desktop_rag.core.models import resolve_model

    value = None if name == "default" else name
    info = resolve_model(value, "embedding")  # validated before anything changes
    engine = _engine()
    try:
        engine.settings.embedding_model = value
        engine.settings.save(engine.paths.settings_file)
        click.echo(f"Embedding model: {info.name}")
        reembed = engine.needs_reembedding()
        if engine.embedding_fallback:
            click.echo(f"Warning: {engine.embedding_fallback}", err=True)
        if not reembed:
            return
        if not now:
            click.echo(f"The next `desktop-rag index` embeds the {engine.store.chunk_count()} "
                       "indexed chunks again.")  # fmt: skip
            return
        gen = engine.reembed()
        with tqdm(total=engine.store.chunk_count(), unit="chunk", file=sys.stderr,
                  desc="Embedding again") as bar:  # fmt: skip
            try:
                while True:
                    p = next(gen)
                    bar.n = p.files_done
                    bar.refresh()
            except StopIteration as stop:
                n = stop.value
        click.echo(f"{n} chunks embedded again with {info.name}")
    finally:
        engine.close()


def _select_llm(name: str | None) -> None:
    """Select an LLM in the settings file (validated first; nothing is loaded)."""
    from desktop_rag.core.models import resolve_model
    from desktop_rag.core.paths import app_paths
    from desktop_rag.core.settings import Settings

    info = resolve_model(name, "llm")
    paths = app_paths().ensure()
    settings = Settings.load(paths.settings_file)
    settings.llm_model = name
    settings.save(paths.settings_file)
    click.echo(f"Answers now come from {info.label}")


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def adapters(ctx: click.Context, as_json: bool) -> None:
    """List the LoRA style adapters (bundled and imported); import, train or remove them."""
    if ctx.invoked_subcommand is not None:
        return
    from desktop_rag.core.generate.adapters import list_adapters
    from desktop_rag.core.paths import app_paths

    found = list_adapters()
    if as_json:
        click.echo(json.dumps([a.to_json() for a in found], indent=2))
        return
    for a in found:
        alpha = f"{a.alpha:g}" if a.alpha is not None else "-"
        click.echo(
            f"{a.name:28} {a.base_architecture:8} rank {a.rank:<3} alpha {alpha:<5} "
            f"{a.bytes / 1e6:6.1f} MB  {'bundled' if a.bundled else 'imported'}"
            + (f"  {a.description}" if a.description else "")
        )
    if not found:
        click.echo("No adapters.")
    click.echo(
        f"\nImport one with `desktop-rag adapters import FILE` (into {app_paths().adapters_dir}); "
        "use it with `desktop-rag ask --adapter NAME`."
    )


@adapters.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def adapters_import(file: Path) -> None:
    """Validate a GGUF LoRA adapter FILE and add it to the adapters folder."""
    from desktop_rag.core.generate.adapters import import_adapter

    info = import_adapter(file)
    click.echo(
        f"Imported {info.name} ({info.base_architecture}, rank {info.rank}, "
        f"{info.bytes / 1e6:.1f} MB) to {info.path}"
    )


def _check_adapter_name(ctx: click.Context, param: click.Parameter, name: str) -> str:
    """The ``--name`` option's check (a usage error, before anything loads)."""
    try:
        from desktop_rag.train.workflow import ADAPTER_NAME_RULE, valid_adapter_name
    except ImportError:  # a build without the training package: the command says so
        return name
    if not valid_adapter_name(name):
        raise click.BadParameter(ADAPTER_NAME_RULE)
    return name


@adapters.command("train")
@click.argument("examples", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--name",
    required=True,
    callback=_check_adapter_name,
    help="Name of the new adapter (its file name).",
)
@click.option("--rank", type=int, default=8, show_default=True, help="LoRA rank.")
@click.option("--alpha", type=float, default=16.0, show_default=True, help="LoRA alpha.")
@click.option("--epochs", type=int, default=1, show_default=True, help="Passes over the examples.")
@click.option("--lr", type=float, default=5e-4, show_default=True, help="Peak learning rate.")
@click.option("--description", default="", help="One line shown in the style list.")
@click.option("--marker", default=None, help="The opening every styled answer starts with.")
@click.option(
    "--base",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Base GGUF model (default: the bundled SmolLM2-135M-Instruct).",
)
def adapters_train(
    examples: Path,
    name: str,
    rank: int,
    alpha: float,
    epochs: int,
    lr: float,
    description: str,
    marker: str | None,
    base: Path | None,
) -> None:
    """Train a LoRA style adapter on EXAMPLES (JSONL chats) on the CPU, offline.

    Each line is {"messages": [system, user, assistant]} in the app's own prompt format (see
    resources/adapters/*.examples.jsonl). Needs the training extra: pip install desktop-rag[train].
    Ctrl+C stops cleanly without leaving a partial adapter.
    """
    from tqdm import tqdm

    from desktop_rag.core.types import CancelToken

    try:
        from desktop_rag.train.workflow import train_new_adapter
    except ImportError as exc:  # a build without the training package
        raise MissingExtraError("training", "train", (exc.name or "desktop_rag.train",)) from None
    cancel = CancelToken()
    steps = train_new_adapter(
        examples, name, base=base, rank=rank, alpha=alpha, epochs=epochs, lr=lr,
        description=description, marker=marker, cancel=cancel,
    )  # fmt: skip
    bar = None
    try:
        while True:
            try:
                p = next(steps)
            except StopIteration as stop:
                info = stop.value
                break
            if p.phase == "training":
                if bar is None:
                    bar = tqdm(total=p.total_steps, unit="step", desc="Training")
                bar.n = p.step
                if p.loss is not None:
                    bar.set_postfix(loss=f"{p.loss:.3f}")
                bar.refresh()
            else:
                if bar is not None and p.phase != "loading":
                    bar.close()
                    bar = None
                click.echo(f"{p.phase.capitalize()}… ({p.elapsed_s:.0f} s)", err=True)
    except KeyboardInterrupt:
        cancel.cancel()
        click.echo("\n[stopped: no adapter written]", err=True)
        sys.exit(130)
    finally:
        steps.close()  # a run stopped part way removes its partial file
        if bar is not None:
            bar.close()
    click.echo(
        f"Trained {info.name} (rank {info.rank}, {info.bytes / 1e6:.1f} MB) into {info.path}; "
        f"use it with `desktop-rag ask --adapter {info.name}`."
    )


@adapters.command("remove")
@click.argument("name")
def adapters_remove(name: str) -> None:
    """Delete the imported adapter NAME (bundled adapters stay)."""
    from desktop_rag.core.generate.adapters import remove_adapter

    path = remove_adapter(name)
    click.echo(f"Removed {path}")


@cli.command()
@click.confirmation_option(prompt="Delete the whole index (your documents are not touched)?")
def reset() -> None:
    """Delete the index (the SQLite store and vector cache); documents are never touched.

    Refused while another process is indexing into the same data folder.
    """
    from desktop_rag.core.maintenance import reset_index

    reset_index()
    click.echo("Index deleted.")


cli.add_command(serve)


def main() -> None:
    """Console entry point."""
    import multiprocessing

    multiprocessing.freeze_support()  # the document-parsing worker in a frozen (bundled) app
    cli(prog_name="desktop-rag")
