"""`make plan`: the real program under Pulumi's mocks, rendered as text, JSON, Mermaid or IstioOperator.

The top layer beside `__main__.py`: it runs the whole program, so it may import any layer; nothing
imports it but the tests, which use its engine to evaluate the program under mocks.
"""
