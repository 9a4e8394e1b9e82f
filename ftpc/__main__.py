from ftpc.cli import main

main()
