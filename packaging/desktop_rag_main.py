"""Entry script of the bundled executable: the same ``desktop-rag`` command as a pip install.

No arguments open the desktop app; ``desktop-rag index ...``, ``ask ...`` and the other commands
run the command line (see README.md).
"""

from __future__ import annotations

from desktop_rag.cli import main

if __name__ == "__main__":
    main()
