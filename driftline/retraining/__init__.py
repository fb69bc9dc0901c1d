"""Retraining: triggers (no storms), workflow steps (gate, approval, deploy, canary, promote,
rollback) and manual approvals. Submodules are imported directly; this package imports nothing so
the ``retrain-trigger`` Lambda only pays for what it uses.
"""
