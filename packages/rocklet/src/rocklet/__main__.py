from rocklet.cli import main

main()
