"""The transformers 4.x releases CI also tests the package against (Colab may ship a 4.x).

4.49 is the oldest we support: from it on, the attention of GPT-2, NeoX, the Llama-likes,
Gemma, Phi-3 and OLMo-2 goes through `ALL_ATTENTION_FUNCTIONS`, where the hooked attention is
registered. OPT joins that registry in 4.52 and GPT-J in 5.x, so older releases refuse those two
from their config (`adapters.py`). 4.57 is the last 4.x. `.ci/run` runs `python tests/compat.py` to get the list.
"""

TRANSFORMERS_4 = ("4.49.0", "4.57.6")

if __name__ == "__main__":
    print(" ".join(TRANSFORMERS_4))
