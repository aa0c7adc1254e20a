from cheaptokens.cli import main

raise SystemExit(main())
