"""Data: readers for the datasets' layouts, the synthetic demo, splits, class weights, pipelines."""
