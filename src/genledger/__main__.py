from genledger.cli import main

main()
