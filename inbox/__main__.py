from inbox.cli import main

main()
