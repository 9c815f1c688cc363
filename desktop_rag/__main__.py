"""``python -m desktop_rag`` runs the command-line interface."""

from desktop_rag.cli import main

if __name__ == "__main__":
    main()
