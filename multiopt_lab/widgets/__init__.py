"""multiopt_lab.widgets"""
