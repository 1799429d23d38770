"""`python -m supervising_ui.cli`: the same console as the `supervising-ui` command."""
from . import main

main()
