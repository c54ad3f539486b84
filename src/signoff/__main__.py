"""`python -m signoff` is the same as the `signoff` console script."""

from signoff.cli.entry import main

if __name__ == "__main__":
    main()
