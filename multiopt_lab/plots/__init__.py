"""multiopt_lab.plots"""
