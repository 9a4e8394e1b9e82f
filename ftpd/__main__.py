from ftpd.cli import main

main()
