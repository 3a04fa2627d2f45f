from vigie.ops.cli import main

main()
