"""`python -m concierge_operator` is `concierge-operator`."""

from concierge_operator.main import main

main()
