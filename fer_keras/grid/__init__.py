"""Experiment grids: expand a grid file into runs, run the missing ones, shard them across workers."""

from fer_keras.grid.spec import Grid, GridError, Point, load_grid

__all__ = ["Grid", "GridError", "Point", "load_grid"]
