"""`python -m survivor` runs the command line."""

from survivor.cli import run

if __name__ == "__main__":
    run()
