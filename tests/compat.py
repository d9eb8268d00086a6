"""The transformers 4.x releases CI also tests the package against (Colab may ship a 4.x).

4.49 is the oldest we support: from it on, every adapter's attention (GPT-2, NeoX, Llama)
goes through `ALL_ATTENTION_FUNCTIONS`, where the hooked attention is registered. 4.57 is
the last 4.x. `.ci/run` runs `python tests/compat.py` to get the list.
"""

TRANSFORMERS_4 = ("4.49.0", "4.57.6")

if __name__ == "__main__":
    print(" ".join(TRANSFORMERS_4))
