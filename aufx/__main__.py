from aufx.cli import main

raise SystemExit(main())
