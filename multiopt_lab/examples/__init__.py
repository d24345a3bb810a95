"""multiopt_lab.examples"""
