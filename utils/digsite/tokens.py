"""Tokenization for a hooked model: text to token ids and back, with BOS and right padding.

`Tokenization` is a mixin of `HookedModel` (it needs `self.tokenizer` and `self.device`):
`to_tokens`, `to_str_tokens`, `to_string` and `input_ids` follow TransformerLens's names.
Right padding leaves every real token's logits unchanged, because attention is causal.
"""

from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import Tensor

TokensLike = Union[str, Sequence[str], Tensor]


class Tokenization:
    """Text <-> token ids through the model's Hugging Face tokenizer (`self.tokenizer`)."""

    tokenizer: object
    device: torch.device

    def _need_tokenizer(self):
        if self.tokenizer is None:
            raise ValueError("This model was wrapped without a tokenizer: pass token ids, or wrap(model, tokenizer).")
        return self.tokenizer

    def _pad_id(self) -> int:
        tok = self._need_tokenizer()
        for token_id in (tok.pad_token_id, tok.eos_token_id, tok.bos_token_id):
            if token_id is not None:
                return token_id
        return 0

    def input_ids(self, tokens: TokensLike) -> Tensor:
        """Token ids (batch, pos) on the model's device, from text, texts, or a 1-D/2-D tensor."""
        if isinstance(tokens, Tensor):
            ids = tokens if tokens.ndim == 2 else tokens.reshape(1, -1)
            return ids.to(self.device, torch.long)
        return self.to_tokens(tokens)

    def _token_rows(self, text: Union[str, Sequence[str]], prepend_bos: bool) -> list[list[int]]:
        """Token ids of each text, unpadded."""
        tok = self._need_tokenizer()
        texts = [text] if isinstance(text, str) else list(text)
        rows = [tok.encode(t, add_special_tokens=False) for t in texts]
        if prepend_bos:
            bos = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
            if bos is None:
                raise ValueError("This tokenizer has no BOS (or EOS) token: use prepend_bos=False.")
            rows = [[bos, *row] for row in rows]
        return rows

    def to_tokens(self, text: Union[str, Sequence[str]], prepend_bos: bool = True) -> Tensor:
        """Token ids (batch, pos) for a text or a list of texts, right-padded; BOS first by default.

        Right padding leaves every real token's logits unchanged (attention is causal).
        """
        return self._padded(self._token_rows(text, prepend_bos))

    def _padded(self, rows: list[list[int]], left: bool = False) -> Tensor:
        """Rows of token ids padded to one width (on the right, or on the left): (batch, pos) on the model's device."""
        width = max(len(row) for row in rows)
        pad = self._pad_id()
        ids = [[pad] * (width - len(row)) + row if left else row + [pad] * (width - len(row)) for row in rows]
        return torch.tensor(ids, dtype=torch.long, device=self.device)

    def _padding_mask(self, rows: list[list[int]], left: bool = False) -> Tensor:
        """1 at each real token of `_padded(rows, left)`, 0 at padding: (batch, pos) on the model's device."""
        width = max(len(row) for row in rows)
        mask = torch.zeros(len(rows), width, dtype=torch.long, device=self.device)
        for i, row in enumerate(rows):
            if left:
                mask[i, width - len(row) :] = 1
            else:
                mask[i, : len(row)] = 1
        return mask

    def to_str_tokens(self, tokens: Union[str, Tensor], prepend_bos: bool = True) -> list[str]:
        """Each token of one sequence as its own string (text or a 1-D / (1, pos) tensor)."""
        ids = self.to_tokens(tokens, prepend_bos)[0] if isinstance(tokens, str) else tokens.reshape(-1)
        tok = self._need_tokenizer()
        return [tok.decode([i]) for i in ids.tolist()]

    def to_string(self, tokens: Union[int, Tensor]) -> Union[str, list[str]]:
        """Decode a token id, (pos,) to a string, or (batch, pos) to a list of strings."""
        tok = self._need_tokenizer()
        if isinstance(tokens, int) or tokens.ndim == 0:
            return tok.decode([int(tokens)])
        if tokens.ndim == 1:
            return tok.decode(tokens.tolist())
        return [tok.decode(row) for row in tokens.tolist()]
