"""The papers' analyses on top of features and ridge encoders: why a model aligns, which words drive it,
which instruction and layer explain each target. Pure functions and estimators; commands compose them.
"""
