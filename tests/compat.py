"""The oldest transformers release CI also tests the package against (Colab may ship a 4.x).

`.ci/run` reads TRANSFORMERS_4 from this file to build its second environment.
"""

TRANSFORMERS_4 = "4.57.6"
