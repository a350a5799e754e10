from imagehub.cli import main

main()
