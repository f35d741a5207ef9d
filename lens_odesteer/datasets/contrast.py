"""Contrast pairs: the (prompt, positive, negative) text triples that steering methods fit on.

A :class:`ContrastPair` holds a shared ``prompt`` and two completions. The text fed to the model
for fitting is ``prompt + completion`` (or a custom ``template``), so the completion is always the
*end* of the string and the caller can find it again with :meth:`ContrastDataset.prompt_lengths`
or :meth:`ContrastDataset.answer_spans` (character offsets; map them to tokens with the
tokenizer's offset mapping, or tokenise the prompt alone and count).

Chat models: render every pair once with :meth:`ContrastDataset.with_chat_template` (built on
:func:`format_chat`) and use the very same helper to build steering-time prompts, so that fitting
and steering see identically formatted text.

Nothing here imports ``transformers`` or ``transformer_lens``; tokenizers are duck-typed.
"""

from __future__ import annotations

import string
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, overload, runtime_checkable

from lens_odesteer._splits import fold_groups, split_groups
from lens_odesteer.errors import InvalidParameterError

__all__ = [
    "DEFAULT_TEMPLATE",
    "ChatTokenizer",
    "ContrastDataset",
    "ContrastPair",
    "format_chat",
    "render_template",
]

#: The default text template: the prompt immediately followed by the completion.
DEFAULT_TEMPLATE = "{prompt}{completion}"


@runtime_checkable
class ChatTokenizer(Protocol):
    """The one method :func:`format_chat` needs (any Hugging Face tokenizer has it)."""

    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> Any:  # pragma: no cover
        """Render a list of ``{"role", "content"}`` messages."""
        ...


# --------------------------------------------------------------------------- templates


def render_template(template: str | None, prompt: str, completion: str) -> tuple[str, int, int]:
    """Fill a text template and say where the completion landed.

    Args:
        template: a :meth:`str.format` string whose only fields are ``{prompt}`` and
            ``{completion}`` (each without format spec or conversion); ``{completion}`` must
            occur exactly once. ``None`` means :data:`DEFAULT_TEMPLATE`
            (``"{prompt}{completion}"``).
            Literal braces are written ``{{`` and ``}}`` as usual.
        prompt: the text substituted for ``{prompt}``.
        completion: the text substituted for ``{completion}``.

    Returns:
        ``(text, start, end)`` with ``text[start:end] == completion``.

    Raises:
        InvalidParameterError: for unknown fields, format specs, or a ``{completion}`` count
            other than one.
    """
    tmpl = DEFAULT_TEMPLATE if template is None else template
    if not isinstance(tmpl, str):
        raise InvalidParameterError(
            f"`template` must be a str such as {DEFAULT_TEMPLATE!r}; got {type(tmpl).__name__}."
        )
    parts: list[str] = []
    start = end = -1
    n_completion = 0
    try:
        parsed = list(string.Formatter().parse(tmpl))
    except ValueError as exc:
        raise InvalidParameterError(
            f"`template` {tmpl!r} is not a valid format string ({exc}); write literal braces as "
            "'{{' and '}}'."
        ) from exc
    for literal, field_name, spec, conversion in parsed:
        parts.append(literal)
        if field_name is None:
            continue
        if field_name not in ("prompt", "completion") or spec or conversion:
            raise InvalidParameterError(
                f"`template` {tmpl!r} has the field {{{field_name}"
                f"{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}; only "
                "plain {prompt} and {completion} are allowed."
            )
        if field_name == "prompt":
            parts.append(prompt)
        else:
            n_completion += 1
            start = sum(len(p) for p in parts)
            parts.append(completion)
            end = start + len(completion)
    if n_completion != 1:
        raise InvalidParameterError(
            f"`template` {tmpl!r} must contain {{completion}} exactly once; found {n_completion}."
        )
    return "".join(parts), start, end


# --------------------------------------------------------------------------- chat formatting


def _render_chat(tokenizer: ChatTokenizer, messages: list[dict[str, str]], gen: bool) -> str:
    if not hasattr(tokenizer, "apply_chat_template"):
        raise InvalidParameterError(
            "`tokenizer` must have an `apply_chat_template` method (a Hugging Face tokenizer "
            f"with a chat template); got {type(tokenizer).__name__}."
        )
    out = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
    if not isinstance(out, str):
        raise InvalidParameterError(
            "`tokenizer.apply_chat_template(..., tokenize=False)` returned "
            f"{type(out).__name__}, expected str. Does this tokenizer define a chat template?"
        )
    return out


def format_chat(
    tokenizer: ChatTokenizer,
    user: str,
    assistant: str | None = None,
    *,
    system: str | None = None,
) -> str:
    """Render one chat exchange as text, the same way for fitting and for steering.

    The messages are ``[{"role": "system", "content": system}]`` (only when ``system`` is given)
    followed by ``{"role": "user", "content": user}`` and, when ``assistant`` is given,
    ``{"role": "assistant", "content": assistant}``. They are rendered with
    ``tokenizer.apply_chat_template(messages, tokenize=False,
    add_generation_prompt=assistant is None)``.

    * ``assistant is None`` (steering / generation time): the rendered prompt *including* the
      generation prompt (e.g. ``"<|im_start|>assistant\\n"`` for ChatML), ready for generation.
    * ``assistant`` given (fitting time): the rendered conversation **cut right after the
      answer text**, i.e. without the end-of-turn token and anything after it (ChatML's
      ``"<|im_end|>\\n"``, Llama 3's ``"<|eot_id|>"``, ...). The last token of the string is
      therefore the last answer token. The cut is made after the last occurrence of
      ``assistant`` in the rendered text; templates that ``trim`` the content are handled by
      also looking for ``assistant.strip()``.

    For ChatML-style templates (SmolLM2, Qwen2, ...), Llama 3 and Gemma the fitting string equals
    ``format_chat(tok, user) + assistant``. Templates that render past assistant turns
    differently from the generation prompt (for instance ones that insert or strip a reasoning
    block) break that equality; :meth:`ContrastDataset.with_chat_template` warns when it happens.

    Args:
        tokenizer: any object with a Hugging Face style ``apply_chat_template`` method.
        user: the user turn content.
        assistant: the assistant answer, or ``None`` for a generation prompt.
        system: an optional system message put first.

    Returns:
        The rendered text (special tokens are literal text; tokenise it without adding a BOS
        again if the template already contains one).

    Raises:
        InvalidParameterError: when the tokenizer cannot render, or the answer is not found in
            the rendered conversation.
    """
    messages: list[dict[str, str]] = []
    if system is not None:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": user})
    if assistant is None:
        return _render_chat(tokenizer, messages, gen=True)
    messages.append({"role": "assistant", "content": assistant})
    rendered = _render_chat(tokenizer, messages, gen=False)
    for needle in (assistant, assistant.strip()):
        if needle:
            idx = rendered.rfind(needle)
            if idx >= 0:
                return rendered[: idx + len(needle)]
    raise InvalidParameterError(
        f"The assistant answer {assistant[:80]!r} does not appear in the rendered chat "
        f"{rendered[-200:]!r}; the chat template changes the message content, so the answer span "
        "cannot be located. Pass the answer as the template renders it."
    )


# --------------------------------------------------------------------------- data classes


@dataclass(frozen=True)
class ContrastPair:
    """One contrast example: a shared prompt and a positive and a negative completion.

    Attributes:
        prompt: the shared context ("" when the pair has none). Text for the model is
            ``prompt + completion`` by default, so put any separator (space, newline) in the
            prompt or at the start of the completions.
        positive: the completion showing the behaviour to steer *towards*.
        negative: the completion showing the behaviour to steer *away from*.
        group: an identifier shared by pairs built from the same source item (e.g. one
            TruthfulQA question); splits keep a group on one side. ``None`` = its own group.
    """

    prompt: str
    positive: str
    negative: str
    group: str | None = None

    def __post_init__(self) -> None:
        for attr in ("prompt", "positive", "negative"):
            val = getattr(self, attr)
            if not isinstance(val, str):
                raise InvalidParameterError(
                    f"ContrastPair.{attr} must be a str; got {type(val).__name__} ({val!r:.80})."
                )
        if not self.positive or not self.negative:
            raise InvalidParameterError(
                "ContrastPair.positive and .negative must be non-empty strings; got "
                f"positive={self.positive!r:.80}, negative={self.negative!r:.80}."
            )
        if self.positive == self.negative:
            raise InvalidParameterError(
                f"ContrastPair.positive and .negative are identical ({self.positive!r:.80}); a "
                "contrast pair needs two different completions."
            )
        if self.group is not None and not isinstance(self.group, str):
            raise InvalidParameterError(
                f"ContrastPair.group must be a str or None; got {type(self.group).__name__}."
            )

    def text(self, which: Literal["positive", "negative"], template: str | None = None) -> str:
        """The full text for one side (see :func:`render_template`)."""
        return render_template(template, self.prompt, self._side(which))[0]

    def answer_span(
        self, which: Literal["positive", "negative"], template: str | None = None
    ) -> tuple[int, int]:
        """``(start, end)`` character offsets of the completion inside :meth:`text`."""
        _, start, end = render_template(template, self.prompt, self._side(which))
        return start, end

    def _side(self, which: str) -> str:
        if which == "positive":
            return self.positive
        if which == "negative":
            return self.negative
        raise InvalidParameterError(f"`which` must be 'positive' or 'negative'; got {which!r}.")


def _as_pair(item: object, index: int) -> ContrastPair:
    if isinstance(item, ContrastPair):
        return item
    if isinstance(item, (tuple, list)) and len(item) in (3, 4):
        return ContrastPair(*item)
    raise InvalidParameterError(
        f"pairs[{index}] must be a ContrastPair or a (prompt, positive, negative[, group]) tuple; "
        f"got {type(item).__name__}."
    )


@dataclass(frozen=True)
class ContrastDataset(Sequence[ContrastPair]):
    """An immutable, named list of :class:`ContrastPair` objects.

    Attributes:
        name: a short name (``"truthfulqa"``, ``"sentiment"``, ...).
        pairs: the pairs, a tuple of :class:`ContrastPair` (build from plain
            ``(prompt, positive, negative)`` tuples with :meth:`from_triples`).
        metadata: free-form string facts about the data (``source``, ``licence``, pairing
            rule, counts, ...). Not used for equality of pairs, but compared in ``==``.
    """

    name: str
    pairs: tuple[ContrastPair, ...]
    metadata: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidParameterError(
                f"ContrastDataset.name must be a non-empty str; got {self.name!r}."
            )
        if isinstance(self.pairs, (str, bytes)) or not isinstance(self.pairs, Iterable):
            raise InvalidParameterError(
                "ContrastDataset.pairs must be a sequence of ContrastPair; got "
                f"{type(self.pairs).__name__}."
            )
        pairs = tuple(_as_pair(p, i) for i, p in enumerate(self.pairs))
        object.__setattr__(self, "pairs", pairs)
        meta = dict(self.metadata) if self.metadata is not None else {}
        object.__setattr__(self, "metadata", {str(k): str(v) for k, v in meta.items()})

    @classmethod
    def from_triples(
        cls,
        name: str,
        triples: Iterable[Sequence[str | None]],
        metadata: Mapping[str, str] | None = None,
    ) -> ContrastDataset:
        """Build from ``(prompt, positive, negative)`` or ``(..., group)`` tuples."""
        pairs = tuple(_as_pair(tuple(t), i) for i, t in enumerate(triples))
        return cls(name, pairs, dict(metadata or {}))

    # ----------------------------------------------------------------- sequence protocol

    def __len__(self) -> int:
        return len(self.pairs)

    @overload
    def __getitem__(self, index: int) -> ContrastPair: ...

    @overload
    def __getitem__(self, index: slice) -> ContrastDataset: ...

    def __getitem__(self, index: int | slice) -> ContrastPair | ContrastDataset:
        """A pair for an ``int`` index, a new dataset (same name and metadata) for a slice."""
        if isinstance(index, slice):
            return self._with_pairs(self.pairs[index])
        return self.pairs[index]

    def __iter__(self) -> Iterator[ContrastPair]:
        return iter(self.pairs)

    def __repr__(self) -> str:
        return f"ContrastDataset(name={self.name!r}, n_pairs={len(self)}, n_groups={self.n_groups})"

    def _with_pairs(self, pairs: Iterable[ContrastPair]) -> ContrastDataset:
        return ContrastDataset(self.name, tuple(pairs), dict(self.metadata))

    # ----------------------------------------------------------------- texts

    @property
    def prompts(self) -> list[str]:
        """The raw prompts, one per pair."""
        return [p.prompt for p in self.pairs]

    @property
    def groups(self) -> list[str]:
        """The group of each pair; a pair without one gets the unique id ``"#<index>"``."""
        return [p.group if p.group is not None else f"#{i}" for i, p in enumerate(self.pairs)]

    @property
    def n_groups(self) -> int:
        """How many distinct groups (source items) the pairs come from."""
        return len(set(self.groups))

    def positive_texts(self, template: str | None = None) -> list[str]:
        """Full positive strings for fitting: ``template`` filled with prompt and positive.

        Args:
            template: see :func:`render_template`; ``None`` gives ``prompt + positive``.
        """
        return [p.text("positive", template) for p in self.pairs]

    def negative_texts(self, template: str | None = None) -> list[str]:
        """Full negative strings for fitting: ``template`` filled with prompt and negative."""
        return [p.text("negative", template) for p in self.pairs]

    def prompt_lengths(self, template: str | None = None) -> list[int]:
        """Characters before the completion in each full text (same for both sides).

        ``text[:n]`` is the context and ``text[n:]`` the answer (for templates that end with
        ``{completion}``, like the default).
        """
        return [p.answer_span("positive", template)[0] for p in self.pairs]

    def answer_spans(
        self, which: Literal["positive", "negative"], template: str | None = None
    ) -> list[tuple[int, int]]:
        """``(start, end)`` character offsets of the completion in each full text of one side."""
        return [p.answer_span(which, template) for p in self.pairs]

    def to_records(self) -> list[dict[str, str]]:
        """Plain dicts ``{"prompt", "positive", "negative"[, "group"]}`` (for JSON Lines)."""
        out: list[dict[str, str]] = []
        for p in self.pairs:
            rec = {"prompt": p.prompt, "positive": p.positive, "negative": p.negative}
            if p.group is not None:
                rec["group"] = p.group
            out.append(rec)
        return out

    # ----------------------------------------------------------------- splits

    def split(
        self, test_size: float | int = 0.2, seed: int = 0
    ) -> tuple[ContrastDataset, ContrastDataset]:
        """Split into ``(train, test)`` by group, deterministically for a given ``seed``.

        Groups (see :attr:`groups`) are shuffled with ``random.Random(seed)`` and the first
        ones go to the test set, so all pairs of one source item (e.g. one question) land on
        the same side. Pair order inside each part follows the original order. The split is
        :func:`lens_odesteer._splits.split_groups`, the one used everywhere in the library.

        Args:
            test_size: a fraction in ``(0, 1)`` of the groups, or an ``int`` number of groups.
                A fraction is rounded and clamped so both parts get at least one group.
            seed: the shuffle seed.

        Raises:
            InvalidParameterError: for fewer than two groups or a ``test_size`` out of range.
        """
        train, test = split_groups(self.groups, test_size, seed, what=f"dataset {self.name!r}")
        return self._take(train), self._take(test)

    def folds(
        self, n_folds: int = 2, seed: int = 0
    ) -> list[tuple[ContrastDataset, ContrastDataset]]:
        """K-fold cross-validation by group: a list of ``(train, test)`` parts.

        Shuffled groups are dealt round-robin into ``n_folds`` folds (sizes differ by at most
        one group); fold ``k`` is the test part of the ``k``-th tuple. With ``n_folds=2`` this is
        the 2-fold split by question used for TruthfulQA.
        """
        folds = fold_groups(self.groups, n_folds, seed, what=f"dataset {self.name!r}")
        return [(self._take(train), self._take(test)) for train, test in folds]

    def _take(self, rows: list[int]) -> ContrastDataset:
        return self._with_pairs(self.pairs[i] for i in rows)

    # ----------------------------------------------------------------- chat

    def with_chat_template(
        self, tokenizer: ChatTokenizer, *, system: str | None = None
    ) -> ContrastDataset:
        """Return a copy whose texts are rendered with the tokenizer's chat template.

        For each pair, ``user = pair.prompt.strip()`` and each completion ``.strip()`` become a
        user and an assistant turn, rendered by :func:`format_chat` (end-of-turn token cut off).
        The new pair has ``prompt`` = everything before the answer and ``positive`` /
        ``negative`` = the answer as it appears in the rendered text, so with the default
        template ``positive_texts()[i] == format_chat(tokenizer, user, positive, system=system)``
        and :meth:`prompt_lengths` points at the answer.

        Use it with the default template only (the chat text is complete). Build the
        steering-time prompt with ``format_chat(tokenizer, user, system=system)``; a warning is
        issued if that differs from the rendered fitting prefix for any pair.

        Prompts written for plain text (e.g. TruthfulQA's ``"Q: ...\\nA: "``) are used verbatim
        (stripped) as the user turn; load with a plain prompt template (``"{question}"``) for
        chat models.

        Raises:
            InvalidParameterError: if the positive and negative renders do not share the same
                prefix (a template that depends on the answer text).
        """
        new_pairs: list[ContrastPair] = []
        n_mismatch = 0
        for i, p in enumerate(self.pairs):
            user = p.prompt.strip()
            pos_text = format_chat(tokenizer, user, p.positive.strip(), system=system)
            neg_text = format_chat(tokenizer, user, p.negative.strip(), system=system)
            prefix, pos, neg = _split_common_answer(pos_text, neg_text, p)
            if not prefix:
                raise InvalidParameterError(
                    f"Pair {i} of {self.name!r}: the chat renders of the positive and negative "
                    "answers share no prefix; the chat template depends on the answer text."
                )
            if prefix != format_chat(tokenizer, user, system=system):
                n_mismatch += 1
            new_pairs.append(ContrastPair(prefix, pos, neg, p.group))
        if n_mismatch:
            warnings.warn(
                f"For {n_mismatch} of {len(self)} pairs of {self.name!r} the chat template renders "
                "the prompt before an assistant answer differently from the generation prompt "
                "(format_chat(tokenizer, user)); fitting and steering contexts will differ.",
                stacklevel=2,
            )
        meta = dict(self.metadata)
        meta["chat_template"] = "applied" + (" (with system message)" if system else "")
        return ContrastDataset(self.name, tuple(new_pairs), meta)


def _split_common_answer(pos_text: str, neg_text: str, pair: ContrastPair) -> tuple[str, str, str]:
    """Split two rendered chats into (shared prefix, positive answer, negative answer)."""
    for pos_ans, neg_ans in (
        (pair.positive, pair.negative),
        (pair.positive.strip(), pair.negative.strip()),
    ):
        if pos_text.endswith(pos_ans) and neg_text.endswith(neg_ans):
            pre_p = pos_text[: len(pos_text) - len(pos_ans)]
            pre_n = neg_text[: len(neg_text) - len(neg_ans)]
            if pre_p == pre_n:
                return pre_p, pos_ans, neg_ans
    raise InvalidParameterError(
        f"The chat renders of pair (prompt={pair.prompt[:60]!r}) do not share one prefix before "
        "the answers; this chat template depends on the answer text and cannot be used for "
        "contrast pairs."
    )
