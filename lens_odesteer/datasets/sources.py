"""Where each evaluation data file comes from: a pinned public URL, its sha256, size and licence.

The evaluation tasks read public datasets from a data folder (see
:mod:`lens_odesteer.datasets.locate`). Each :class:`DataFile` below is one file of that folder:
``path`` is where it is stored, ``url`` the public file it is downloaded from (a GitHub raw URL
pinned to a commit, so the bytes cannot change under us), and ``sha256``/``size`` describe the
exact bytes the evaluation suite was developed and checked with. ``lens-odesteer data fetch``
accepts a download only if its sha256 matches.

Each folder comes from one repository at one commit (:data:`SOURCES`); the revisions are those
recorded when the data was first copied. Every source gives a pinned revision; where the copy
came from a fork or a vendored copy rather than the original project, the note on the source
says so.

Example:
    >>> f = manifest_entry("truthfulqa/v1/mc_task.json")
    >>> f.dataset, f.size, f.licence
    ('truthfulqa', 755456, 'Apache-2.0')
    >>> f.url.startswith("https://raw.githubusercontent.com/koppula/TruthfulQA/4dee2311")
    True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from lens_odesteer.errors import InvalidParameterError

__all__ = ["DATA_FILES", "SOURCES", "DataFile", "Source", "manifest_entry", "select_files"]


@dataclass(frozen=True)
class Source:
    """One public dataset: a top-level folder of the data folder, from one repository and commit.

    Attributes:
        name: the folder name (``"truthfulqa"``).
        title: what the data is, with its paper.
        repo: GitHub ``owner/name`` the files were copied from.
        commit: the full commit hash the URLs are pinned to.
        licence: SPDX-style licence of the files (see ``licence_by_prefix`` for exceptions).
        upstream_dir: folder in ``repo`` that holds the files (prefix of their upstream path).
        renames: stored path (inside the folder) -> upstream path, where it is not
            ``upstream_dir + stored path``; an upstream name ending in ``.gz`` is stored
            decompressed.
        licence_by_prefix: stored-path prefix -> licence, for files licensed differently.
        used_by: the evaluation tasks that read this folder (empty: library loaders only).
        note: provenance remarks (forks, vendored copies, attribution).
    """

    name: str
    title: str
    repo: str
    commit: str
    licence: str
    upstream_dir: str = ""
    renames: Mapping[str, str] = field(default_factory=dict)
    licence_by_prefix: Mapping[str, str] = field(default_factory=dict)
    used_by: tuple[str, ...] = ()
    note: str = ""

    @property
    def page(self) -> str:
        """The repository's web page at the pinned commit."""
        return f"https://github.com/{self.repo}/tree/{self.commit}"


@dataclass(frozen=True)
class DataFile:
    """One file of the data folder, as users must get it.

    Attributes:
        path: where it is stored, relative to the data folder (``/`` separators).
        url: the pinned public URL it is downloaded from.
        sha256: hex digest of the stored bytes (after decompression when ``gzip``).
        size: stored size in bytes.
        licence: SPDX-style licence.
        dataset: its top-level folder, a key of :data:`SOURCES`.
        gzip: ``url`` serves the file gzip-compressed; it is stored decompressed.
    """

    path: str
    url: str
    sha256: str
    size: int
    licence: str
    dataset: str
    gzip: bool = False


_CAA_FROM_ANTHROPIC = "MIT (repository); items from Anthropic's evals: CC-BY-4.0"
_CAA_BEHAVIOURS = (
    "coordinate-other-ais",
    "corrigible-neutral-HHH",
    "hallucination",
    "myopic-reward",
    "refusal",
    "survival-instinct",
    "sycophancy",
)
# Upstream, generate_dataset.json is under Datasets/generate/<behaviour>/ and the test sets
# under Datasets/test/<behaviour>/ (CAA's own layout); they are stored side by side here.
_CAA_FILES = ("generate_dataset.json", "test_dataset_ab.json", "test_dataset_open_ended.json")

#: Every source folder, in the order ``lens-odesteer data list`` shows them.
SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            name="truthfulqa",
            title="TruthfulQA (Lin, Hilton & Evans, 2021)",
            repo="koppula/TruthfulQA",
            commit="4dee2311b23de20b43bfc12ace7037f3f71ba421",
            licence="Apache-2.0",
            upstream_dir="data/",
            renames={"TruthfulQA.csv": "TruthfulQA.csv"},
            used_by=("truthfulqa_mc", "truthfulqa_gen"),
            # The original repository is github.com/sylinrl/TruthfulQA; the copy was taken from
            # this public fork, whose commits touch only code. The four files were last changed
            # by upstream commit f6be04e52bbcb41d4d20daee6358231d4a5015d2 (2025-01-14), so the
            # same bytes should be at that upstream revision (not checked here).
            note="fork of github.com/sylinrl/TruthfulQA; files as of upstream f6be04e",
        ),
        Source(
            name="caa",
            title="CAA behaviour sets (Rimsky et al., 2024)",
            repo="EleutherAI/rnngineering",
            commit="b18a80e3f7e3259f21e2a6574aaed3a21954aac6",
            licence="MIT",
            renames={
                f"{b}/{n}": f"Datasets/{'generate' if n.startswith('generate') else 'test'}/{b}/{n}"
                for b in _CAA_BEHAVIOURS
                for n in _CAA_FILES
            },
            licence_by_prefix={
                f"{b}/": _CAA_FROM_ANTHROPIC
                for b in (
                    "coordinate-other-ais",
                    "corrigible-neutral-HHH",
                    "myopic-reward",
                    "survival-instinct",
                    "sycophancy",
                )
            },
            used_by=("behaviors",),
            # The original is github.com/nrimsky/CAA (folder datasets/, a 1.2 GB repository);
            # rnngineering vendored that folder on 2024-03-06 and is the pinned copy used here.
            note="vendored copy of github.com/nrimsky/CAA datasets/ (2024-03-06)",
        ),
        Source(
            name="realtoxicityprompts_decodingtrust",
            title="RealToxicityPrompts subsets (Gehman et al., 2020) as shipped by DecodingTrust",
            repo="AI-secure/DecodingTrust",
            commit="161ae8321ced62f45fcd9ceb412e05b47c603cd4",
            licence="CC-BY-SA-4.0 (DecodingTrust); RealToxicityPrompts: Apache-2.0",
            upstream_dir="data/toxicity/user_prompts/",
            used_by=("detox", "sentiment"),
            note="attribution and share-alike apply when redistributing",
        ),
        Source(
            name="toxigen_demonstrations",
            title="ToxiGen demonstration sentences (Hartvigsen et al., 2022)",
            repo="microsoft/TOXIGEN",
            commit="01517e814639e0334c920a3c502036c8158aac87",
            licence="MIT AND CDLA-Permissive-2.0",
            upstream_dir="demonstrations/",
            renames={"LICENSE.txt": "LICENSE.txt"},
            used_by=("detox",),
            note="CDLA-Permissive-2.0 asks that LICENSE.txt travels with the data",
        ),
        Source(
            name="anthropic_advanced_ai_risk",
            title="Anthropic model-written evals, advanced AI risk, human-written (Perez et al.)",
            repo="anthropics/evals",
            commit="84fcc677e52e1902d696c32cd1a6b663e70d3993",
            licence="CC-BY-4.0",
            upstream_dir="advanced-ai-risk/human_generated_evals/",
            note="attribution: Perez et al., 2022, Discovering Language Model Behaviors with "
            "Model-Written Evaluations",
        ),
        Source(
            name="repe",
            title="Representation Engineering facts and emotions (Zou et al., 2023)",
            repo="andyzoujm/representation-engineering",
            commit="5455d8a375d5fb1cb191f9ebcd089b7c21e9a31e",
            licence="MIT",
            upstream_dir="data/",
            renames={"facts_true_false.csv": "data/facts/facts_true_false.csv"},
        ),
        Source(
            name="hh_rlhf_harmless_base",
            title="Anthropic HH-RLHF harmless-base test split (Bai et al., 2022)",
            repo="anthropics/hh-rlhf",
            commit="354e5c3cb8960630860dd5774a6ac2a58313bf4d",
            licence="MIT",
            renames={"test.jsonl": "harmless-base/test.jsonl.gz"},
            note="upstream is gzip-compressed; stored decompressed",
        ),
    )
}

# Stored path inside each folder, size in bytes, sha256 of the stored bytes.
_FILES: dict[str, tuple[tuple[str, int, str], ...]] = {
    "truthfulqa": (
        ("TruthfulQA.csv", 503550,
         "b8d8ef1e12f98b4f2a9f47abc9765da0640b182b6c5d9b92f0c1a1f2f1e02e5c"),
        ("mc_task.json", 744411,
         "c90d853454fd48c676accb33e16923ac438dbb6fb37ecc7c6a70e33c9e556e87"),
        ("v1/TruthfulQA.csv", 476230,
         "f9bd9e859cc102cb1f647f1064da7e009be752c416845cf9fa56e6eaae403a7d"),
        ("v1/mc_task.json", 755456,
         "b3799639bc76c939836d587de7d30b48d91012cb34be04806d33106ce06c162a"),
    ),
    "caa": (
        ("coordinate-other-ais/generate_dataset.json", 138018,
         "6248eeab5b49d335df85ba16c5b6347500ab6cb00e0a94823d8f833280c94046"),
        ("coordinate-other-ais/test_dataset_ab.json", 18266,
         "10a56904dfd6ecdacdac3986b6a289ce2911bf36ff543ae5cadfe124189aad75"),
        ("coordinate-other-ais/test_dataset_open_ended.json", 11828,
         "0cf5e59923da2014038689d237e34aab84cab76f4bc41f9a541377665b6f1e2c"),
        ("corrigible-neutral-HHH/generate_dataset.json", 96229,
         "e7a789f1f4b1243ea3559f7d4f3b511d435d57cd655d9bfc96d850785f58b7d5"),
        ("corrigible-neutral-HHH/test_dataset_ab.json", 16542,
         "9d66cd416a742f3db1dd463be4466d32b02fe25cc84da1af35b485dec6a9d3d7"),
        ("corrigible-neutral-HHH/test_dataset_open_ended.json", 9392,
         "23efa5ccdf693323c8f1407d4ac3ebffc0d48ca987937e5b4f145b5fdabcee70"),
        ("hallucination/generate_dataset.json", 783594,
         "8b0eb0fd7c235c2d35fde4d54b108c01ae552c5dbb369fad03c1ddfb1d2c549f"),
        ("hallucination/test_dataset_ab.json", 39852,
         "558b1cc55a5a48303a524a581d5fcd2a1747c682eefeaa100719ab9b238fb5b9"),
        ("hallucination/test_dataset_open_ended.json", 11213,
         "d2ba42c5d5d08c3f12743b3891993cc900d629a0c4fe6cd2d73dd07df3507507"),
        ("myopic-reward/generate_dataset.json", 324647,
         "9d4d98897bb45ac57a59b2cbb345b045a971e51bafa4f52b5e3e5665cd274ebd"),
        ("myopic-reward/test_dataset_ab.json", 16983,
         "1e91ce1aace40d1f6f52efea4205fd18b48b5e18385b505ce6c9b1e29fb3bcac"),
        ("myopic-reward/test_dataset_open_ended.json", 8998,
         "31f4cb000b486d44ed39f3b1c781759b1ecf331cbeabb1f4fb69f2ea8286053e"),
        ("refusal/generate_dataset.json", 159566,
         "48f3ce5c017609b9d733f82f92fd63d074aa7d29bf7c4cc1d18155d87da244d1"),
        ("refusal/test_dataset_ab.json", 19830,
         "bee717b4e90afcceb226601843ddc3a34fd7c0b7348c0183cc018642b205d016"),
        ("refusal/test_dataset_open_ended.json", 3824,
         "f29156da69e0daaced06c67ec4d82e9caf15a2aaa3aedc264b2adb67b8c5dfe5"),
        ("survival-instinct/generate_dataset.json", 325061,
         "1dda5220455899f029d18731af2dd6515464c238d6c1ae43f1f87fcae06a637f"),
        ("survival-instinct/test_dataset_ab.json", 18684,
         "059930dedb0974c41a8d237837f36ce77e07f86de90dfc85d1599657ff63d231"),
        ("survival-instinct/test_dataset_open_ended.json", 10589,
         "699320c2ade03ebcfbd10919aa1d69bbe8512fea2731bbb3b47262b3aa63db62"),
        ("sycophancy/generate_dataset.json", 871128,
         "b05f9811714384b0ac099ab0d9fa93aeb88f93cb92cdbaca3727c132c2fec00b"),
        ("sycophancy/test_dataset_ab.json", 43427,
         "9c996dda4e4b8ccacf9ead4c8f7b9dfdfe224bd6c7e927fd7a9e91eb6b1c3c5f"),
        ("sycophancy/test_dataset_open_ended.json", 6663,
         "6d537f3ceea4dcf8b9eea843914d267cb8a425b2580e3e009cd20fb50d11d714"),
    ),
    "realtoxicityprompts_decodingtrust": (
        ("nontoxic.jsonl", 872208,
         "feb50408f49585752bb8cbbb10d1a340ec45783358251299ea9a82ab19606823"),
        ("toxic.jsonl", 860726,
         "a51d4650b14af9c0e795a9cfca2949916855662cee7c8db3dd551d38735d80cb"),
    ),
    "toxigen_demonstrations": (
        ("LICENSE.txt", 3539,
         "56f1dd6be56e0afd33c2c070fa73448fb0eddcbcd60a55a53a8a26a0f6b4c205"),
        ("disability/hate_mental_disability_sentences.txt", 1215,
         "5006966f3bb6816f27d898ba161064c67d78388e3c9b679e0ce2fba6331b3c5e"),
        ("disability/hate_physical_disability_sentences.txt", 1829,
         "42f0f861365f9090aedd2cd9d132576556744e0eeb7bdacd9f96b69b30d337ac"),
        ("disability/neutral_mental_disability_sentences.txt", 1328,
         "31ee714e95dc3bbf35052cde3398882be47d32e9c18586605d52cb5c550e8cb5"),
        ("disability/neutral_physical_disability_sentences.txt", 1160,
         "ed458178e21a86bdcb40a6b3039e87580a76bf3e1ee5f0d764ec76ae35480a07"),
        ("nationality/hate_chinese_sentences.txt", 721,
         "8424a44c9170fffc80a7d69dcc642672343c94d494f07117bb6dc5c17f631e4f"),
        ("nationality/hate_immigrant_sentences.txt", 955,
         "91647bbd4238970592b6776be9adc99a6c943bee11206409782d70c610b2e549"),
        ("nationality/hate_mexican_sentences.txt", 1621,
         "d0db66c68504642cde26c93026809ced3a9a2190ea782e39c90d9d0a36d4aa1b"),
        ("nationality/hate_middle_east_sentences.txt", 1823,
         "e4a50352d900eaa093a0f7038af8deca09d2e9ceb0d0f3e1c5177f807816bd09"),
        ("nationality/neutral_chinese_sentences.txt", 714,
         "3473e4260c4fdedf807504be6a58d2443735c5d8f4786b6599b633525d565eb4"),
        ("nationality/neutral_immigrant_sentences.txt", 1147,
         "8beeb5f52e77753473f8c938b8a0e938c4ffdd563b441f1c5881a211614888cc"),
        ("nationality/neutral_mexican_sentences.txt", 917,
         "c1fe95bf1f21e73e073d3543e195f1d92a69cf6247b43e934b80f13be472e095"),
        ("nationality/neutral_middle_east_sentences.txt", 1181,
         "db19fbfaf0cdf748719ac1c4c0daa291c8d58b781b8a55fb03b729f563c4352c"),
        ("race/hate_asian_sentences.txt", 558,
         "3bdc5ac4af53e1d4f77b9a21d19540045ae2ae3ce35577ee4678ad65b02e1688"),
        ("race/hate_black_sentences.txt", 1080,
         "43296e909b48adacf843d6673f9724f912b1b0eed77e4c49e9135e47585718d0"),
        ("race/hate_jewish_sentences.txt", 641,
         "edf9af973e4fe3f11daf260a1d58465b1328bfe8c4305e0660427ea807e20072"),
        ("race/hate_latino_sentences.txt", 684,
         "f8cc92e2f658c75b5d6d5816b6ec51d6edfe6a9bed2f5782a16d00c9a241ee4b"),
        ("race/hate_native_american_sentences.txt", 1322,
         "0e58e77d7b6d22a70d5caf60a37277f2189fb8eb65f4eb6e7a334e1ff417635b"),
        ("race/neutral_asian_sentences.txt", 988,
         "fa793ba444f6eec89e3fcf253956ca1272d7df64cb9bd79a826019449e70959e"),
        ("race/neutral_black_sentences.txt", 1945,
         "ffa52d9303b13e24e5e1d4b1227204460a7d32ac6b75c1968d752fdb78aaf321"),
        ("race/neutral_jewish_sentences.txt", 1045,
         "436fe727f604462b87045e7a54ed19d7d176a168f7e49b836382dea205c02579"),
        ("race/neutral_latino_sentences.txt", 449,
         "8b7f1a1cf07b9c81a10f9ece369b39fa23346c90ec419f9be418a4c8bd3f0e9f"),
        ("race/neutral_native_american_sentences.txt", 1618,
         "7d85de9e33acb6d5d58ca25036050720c9787c1f897f9ada3944249779be8513"),
        ("religion/hate_muslim.txt", 1000,
         "9c6199a69fc64a1d2d96dc8e8a186004bf13b76697391504aacc830066f2ed4e"),
        ("religion/hate_muslim_sentences.txt", 1055,
         "7716c645ac42e39d60edb16f14e972e02f6bcd057e7673dffd9bcc2ca4f93bd3"),
        ("religion/neutral_muslim.txt", 1166,
         "62bed8bd9192cd3805623a094e113ce531a658752b0e0fdd9a4f0b09e4cad2fc"),
        ("religion/neutral_muslim_sentences.txt", 1166,
         "62bed8bd9192cd3805623a094e113ce531a658752b0e0fdd9a4f0b09e4cad2fc"),
        ("sexual_orientation/hate_bisexual.txt", 2522,
         "e87b39ecdef41950ce0035fb091d862a60d1686021611d458ae047849aff6616"),
        ("sexual_orientation/hate_lgbtq.txt", 11347,
         "b13aecf6ac5e3ff62cc8743d9790c09de7a242f9e635fd5102ad345fd799dd0b"),
        ("sexual_orientation/neutral_bisexual.txt", 3454,
         "44f82d8d4c66e4755143741101531c60d7cf17a10df19f24dceb37c84bab5ce0"),
        ("sexual_orientation/neutral_lgbtq.txt", 13678,
         "932c9b1f59911d862df8ccba5da9d7d486a5750cf344139a241b6c477d68a8e3"),
    ),
    "anthropic_advanced_ai_risk": (
        ("coordinate-itself.jsonl", 106603,
         "f7c56ab2fa3791a4dc668f797e1b99a27a28afd3f5b7cbcceb2075d1515c03bf"),
        ("coordinate-other-ais.jsonl", 142748,
         "63bc32aa2bbaae662fd98cbaeaed23534d915b18ca708583fb64cc189fcca275"),
        ("coordinate-other-versions.jsonl", 121322,
         "5914b1c222fcb4b959ad9e64152cb2ee1d08411340653f1985ff388b63af1418"),
        ("corrigible-less-HHH.jsonl", 107056,
         "d796dc49ba66b9a15bb38dce8f7dc14e212e1f5bac6dc331d64f5fe3e377eec8"),
        ("corrigible-more-HHH.jsonl", 113824,
         "77bf2986d88b0fdc3959e77b20c302ec14edff62bb5e0135a7134b877ade4293"),
        ("corrigible-neutral-HHH.jsonl", 101545,
         "875632869abd5b1e70cccc130dbb6ed2ff6b1b1c7eb50b835a2cfdc02f3daac7"),
        ("myopic-reward.jsonl", 308624,
         "03d4e57220cbe825c9b76df39085a945e8c2fa2c6c7e937fb6df94143491237f"),
        ("one-box-tendency.jsonl", 417496,
         "5e4857204ae346dc3e20809dd09a9e2130020c35b0251cf04375d8b2838dddb7"),
        ("power-seeking-inclination.jsonl", 356298,
         "a8a2094a1e404fb094b3d361e3049ecc06ecd2a26d0b4b827b4a83a98b6d886a"),
        ("self-awareness-general-ai.jsonl", 59476,
         "336ff2038bf175359fa666203f53ba13fc8f33aa86a34559750599dd5688ed24"),
        ("self-awareness-good-text-model.jsonl", 122357,
         "a30f83451c3f24406b702b613407c58b054cbd0d56b97865aaf353b94825b6e2"),
        ("self-awareness-text-model.jsonl", 56143,
         "d0b7c7757be032f5c1962fe8f9469f86932548bcde97affb672bf058a15800f7"),
        ("self-awareness-training-architecture.jsonl", 66359,
         "a0b99868b24e1ed76a72e239958e577622d5818f1183982cacbab8a60750e342"),
        ("self-awareness-web-gpt.jsonl", 60488,
         "b71b66f937599978ab69b48c00f023fe814742035dad2cb48e65c84345e49972"),
        ("survival-instinct.jsonl", 332009,
         "0831782a9e0462f137eb9c4884edd19f248e18f17770f7a4540c67937b3af0e8"),
        ("wealth-seeking-inclination.jsonl", 319073,
         "7583bec06bd799cf21fe854c6e8b92ebb669ce02579ea1a869aa460cc0f18546"),
    ),
    "repe": (
        ("emotions/all_truncated_outputs.json", 9824,
         "c87990913b839fa792b751b532a8f9abc372770bf4d34a1de358a3a233edb6e5"),
        ("emotions/anger.json", 13841,
         "4577af8b0c62b18e3f06fb96883e95ed7b776f0809f605bfe792e438fe1832df"),
        ("emotions/disgust.json", 14308,
         "3532b5d3c3701ad23c799dd436a86db81b716ecd41b35e890e2fb2ae4a80dfff"),
        ("emotions/fear.json", 13325,
         "cf791978f94f62ec617480a646f3a16d38aaf594a385c698bec08bf32747ee2b"),
        ("emotions/happiness.json", 13270,
         "3dedefdc819007074a1a53c7a606d1e5661ac0cc19984212aa809c3a9f6bb646"),
        ("emotions/happiness_fear.json", 16492,
         "bc1c6e8bd7f4d0e5fa30add265693cb4a7e89df5cf65d656c0f2b1489e06962f"),
        ("emotions/happiness_sadness.json", 14034,
         "5534d3e382458e6b12fed6be17142851f00a371d124917adf0bee0d5c6f425ab"),
        ("emotions/sadness.json", 14872,
         "999065615aac1bfb95c5cec054965f9abf17f36d59c7a779916eb28eb3f4ea24"),
        ("emotions/surprise.json", 14791,
         "43d90c0bbf755c789373286e35bc522461f9fe960fb5e3c5586a1749e19c7812"),
        ("facts_true_false.csv", 36588,
         "151b6163289460eb8b37f7c6a1998e23aed8e05b5e557bf1a2297079bf0e5af9"),
    ),
    "hh_rlhf_harmless_base": (
        ("test.jsonl", 3280164,
         "14d765196c9f18d84f9bb3a78bac608c8f2915110ebcbd74ec95db7b7198b008"),
    ),
}


def _entry(source: Source, rel: str, size: int, sha256: str) -> DataFile:
    upstream = source.renames.get(rel, source.upstream_dir + rel)
    licence = next(
        (lic for prefix, lic in source.licence_by_prefix.items() if rel.startswith(prefix)),
        source.licence,
    )
    return DataFile(
        path=f"{source.name}/{rel}",
        url=f"https://raw.githubusercontent.com/{source.repo}/{source.commit}/{quote(upstream)}",
        sha256=sha256,
        size=size,
        licence=licence,
        dataset=source.name,
        gzip=upstream.endswith(".gz") and not rel.endswith(".gz"),
    )


#: Every data file, keyed by its stored path.
DATA_FILES: dict[str, DataFile] = {
    entry.path: entry
    for name, rows in _FILES.items()
    for entry in (_entry(SOURCES[name], *row) for row in rows)
}


def manifest_entry(path: str) -> DataFile:
    """The manifest entry of the stored ``path`` (e.g. ``"caa/refusal/test_dataset_ab.json"``).

    Raises:
        InvalidParameterError: ``path`` is not in the manifest.
    """
    if path not in DATA_FILES:
        raise InvalidParameterError(
            f"{path!r} is not a known data file; see `lens-odesteer data list` for the folders "
            f"({', '.join(SOURCES)})."
        )
    return DATA_FILES[path]


def select_files(names: Iterable[str] | None = None) -> list[DataFile]:
    """The files named by ``names``: source folders, sub-folders or stored paths (None: all).

    Example:
        >>> [f.path for f in select_files(["caa/refusal"])][:1]
        ['caa/refusal/generate_dataset.json']
        >>> len(select_files(["truthfulqa", "truthfulqa/v1/mc_task.json"]))
        4

    Raises:
        InvalidParameterError: a name that matches no file.
    """
    if names is None:
        return list(DATA_FILES.values())
    chosen: dict[str, DataFile] = {}
    for raw in names:
        name = raw.strip().strip("/")
        hits = [f for p, f in DATA_FILES.items() if p == name or p.startswith(name + "/")]
        if not name or not hits:
            raise InvalidParameterError(
                f"Unknown data name {raw!r}. Expected a folder ({', '.join(SOURCES)}), a "
                "sub-folder such as 'caa/refusal', or a file path shown by "
                "`lens-odesteer data list --files`."
            )
        chosen.update((f.path, f) for f in hits)
    return [f for p, f in DATA_FILES.items() if p in chosen]
