from .mlp_foldings import main

raise SystemExit(main())
