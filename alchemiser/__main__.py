from alchemiser.cli.main import main

main()
