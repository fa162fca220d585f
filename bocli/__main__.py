from bocli.cli import main

main()
