"""The MultiOptimizer and its named parts: plan, update, repartition, metrics, guards.
"""
