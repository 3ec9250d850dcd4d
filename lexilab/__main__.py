from lexilab.cli import main

raise SystemExit(main())
