"""multiopt_lab.render"""
