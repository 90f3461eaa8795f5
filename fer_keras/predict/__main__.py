"""``python -m fer_keras.predict``: the fer-predict CLI."""

from fer_keras.predict.cli import main

raise SystemExit(main())
