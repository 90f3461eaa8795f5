import sys

from fer_keras.train.cli import main

sys.exit(main())
