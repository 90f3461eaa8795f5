"""fer_keras: the BTFER facial-expression benchmarking protocol as a tested Keras 3 package."""

__version__ = "0.1.0"
