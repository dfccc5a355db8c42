"""Generate embed-wasm/tests/golden/tokens.json: token ids from Python `tokenizers` for varied strings.

The Rust WordPiece tokenizer (embed-wasm/src/tokenizer.rs) must give the same
ids for the same tokenizer.json. Reference settings: truncation to 256 tokens
(sentence-transformers' max_seq_length; see embed-wasm/README.md), no
padding, special tokens added.

The strings are a hand-picked set of hard cases plus seeded random mixes of
scripts, marks, emoji, controls and special tokens; the output is
deterministic for a given tokenizers version.

Usage: golden_tokens.py TOKENIZER_JSON OUT_JSON [MAX_LENGTH]

MAX_LENGTH is the model's truncation (256 for all-MiniLM-L6-v2, the default;
384 for all-mpnet-base-v2). The special tokens mixed in are the tokenizer's
own added tokens, and each also appears upper- and lower-cased beside text
(all-mpnet-base-v2's `<unk>` is matched after normalisation).
"""

import hashlib
import json
import random
import sys

import tokenizers
from tokenizers import Tokenizer

MAX_LENGTH = 256

HAND_PICKED = [
    "",
    " ",
    "   \t\n\r  ",
    "\u00a0\u3000\u2028\u2029\u200b",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "UPPER lower MiXeD CaSe",
    "unaffable unbelievable antidisestablishmentarianism",
    "Café crème brûlée à la carte, naïve façade, jalapeño, Ångström",
    "e\u0301 a\u0300 o\u0308 n\u0303 (combining marks after base letters)",
    "\u0301\u0301 marks with no base",
    "Z\u0351\u0352\u0353a\u0354\u0355l\u0356\u0357g\u0358\u0359o zalgo",
    "ΟΔΟΣ ΣΟΦΟΣ σοφός — Greek with final sigma",
    "İstanbul ıi İI Turkish dotted and dotless i",
    "Straße ẞ ß ﬁ ﬂ ligatures and sharp s",
    "Москва, Россия! Привет мир.",
    "مرحبا بالعالم، كيف حالك؟",
    "السَّلَامُ عَلَيْكُمْ with harakat",
    "שָׁלוֹם עוֹלָם Hebrew with niqqud",
    "नमस्ते दुनिया हिन्दी",
    "สวัสดีชาวโลก Thai without spaces",
    "你好，世界！我爱北京天安门。",
    "日本語のテキスト、ひらがなとカタカナ。",
    "한국어 텍스트 안녕하세요",
    "混合mixed中文English文本text",
    "𠀀𠀁 𪜀 CJK extension B and C",
    "㐀㐁 CJK extension A, 豈 compatibility ideograph",
    "emoji 😀😃😄 🎉 👍🏽 ❤️",
    "family 👨‍👩‍👧‍👦 zwj sequence and flags 🇫🇷🇯🇵",
    "newer emoji 🥺 🫠 🪿 🫨 🧋",
    "hello😀world",
    "control\u0000chars\u0001here\u0007and\u001b[31mansi\u001b[0m",
    "tab\tnew\nline\rcarriage",
    "replacement \ufffd char and BOM \ufeff and soft\u00adhyphen",
    "private use \ue000\uf8ff and noncharacter \ufdd0",
    "!!!???...,,,;;;:::",
    "--==**&&^^%%$$##@@!!~~``||\\\\//",
    "«quotes» „low“ ‘single’ “double” 「括弧」 『二重』",
    "¿Qué? ¡Sí! … – — ‐ ‑ ‒ dashes",
    "1234567890 3.14159 -42 +7 1e-10 0x1F 1,000,000 ½ ¾ ² ³ ①②③",
    "٠١٢٣٤٥٦٧٨٩ Arabic-Indic digits, ०१२ Devanagari digits",
    "https://example.com/path?query=1&other=two#fragment",
    "mailto:someone@example.org user.name+tag@sub.domain.co.uk",
    "fn main() { println!(\"Hello, {}!\", name); }",
    "def f(x):\n    return x ** 2  # comment",
    "SELECT * FROM memories WHERE user_id = $1 AND content ILIKE '%foo%';",
    "<div class=\"a\">&amp; &lt;tag&gt;</div>",
    "{\"json\": [1, 2, {\"nested\": null}]}",
    "[CLS] [SEP] [PAD] [UNK] [MASK] literal special tokens",
    "[CLS][SEP][PAD][UNK][MASK]",
    "[cls] [Sep] lowercase look-alikes are not special",
    "x[SEP]y[CLS]z",
    "[[SEP]] [SEP [SEP]]]",
    "a" * 100,
    "a" * 101,
    "é" * 100,
    "é" * 101,
    "supercalifragilisticexpialidocious" * 3,
    "word " * 300,
    "中" * 300,
    "! " * 300,
    "😀" * 300,
    "[SEP]" * 300,
    " ".join(str(i) for i in range(400)),
    "mix " + "[MASK] " * 253 + "tail",
    "mix " + "[MASK] " * 254 + "tail",
    "Memory: the user prefers dark mode and uses vim keybindings.",
    "Remind me to call Alice on Tuesday at 3pm about the Q3 budget.",
    "   leading and trailing whitespace   ",
    "multiple     internal      spaces",
    "\n\n\nnewlines\n\n\n",
    "ＦＵＬＬＷＩＤＴＨ ｌｅｔｔｅｒｓ １２３",
    "ℌ𝔢𝔩𝔩𝔬 𝐁𝐨𝐥𝐝 𝒮𝒸𝓇𝒾𝓅𝓉 math alphanumerics",
    "Ⅻ ⅻ ℃ ℉ № ™ ® © letterlike symbols",
    "€100 £50 ¥1000 ₹500 ₿0.1 $5 currency",
    "±×÷∞≠≈≤≥∑∏√∫ math symbols",
    "→ ← ↑ ↓ ⇒ ⇔ arrows",
    "♠♣♥♦ ☀☁☂ ★☆ misc symbols",
    "Ǆǅǆ ǈ titlecase digraphs",
    "ŉ ǰ ẖ special casing",
    "Ꭰ Ꭱ Ꭲ Cherokee ꭰ",
    "𐐀𐐁 Deseret uppercase",
    "ᏸ ᲀ late-added lowercase",
    "Tiếng Việt có dấu: Hà Nội, Thành phố Hồ Chí Minh",
    "Ελληνικά: Αθήνα, Θεσσαλονίκη",
    "Кириллица: Ёж, йод, Щ",
    "ქართული ენა Georgian",
    "Հայերեն Armenian",
    "አማርኛ Amharic",
    "ᠮᠣᠩᠭᠣᠯ Mongolian",
    "ꦗꦮ Javanese",
    "a\u200db\u200cc zero-width joiners",
    "\u202eright-to-left override\u202c and \u2066isolates\u2069",
    "\U000e0041 tag character and \U000f0000 supplementary private use",
]

# Pools for random mixes: each draws from scripts and categories that the
# normaliser and pre-tokenizer treat differently.
POOLS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "0123456789",
    " \t\n\r\u00a0\u2003\u3000",
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
    "àáâãäåçèéêëìíîïñòóôõöùúûüýÿÀÉÎÕÜßøæœ",
    "\u0300\u0301\u0302\u0303\u0308\u0327\u0331\u0345\u20dd",
    "αβγδεζηθλμξπρσςτφχψωΣΩΔ",
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюяЖЯ",
    "ابتثجحخدذرزسشصضطظعغفقكلمنهوي\u064b\u064e\u0650",
    "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年",
    "あいうえおかきくけこアイウエオカキクケコー",
    "가나다라마바사아자차카타파하",
    "😀😂🥲🤖👍🏿🎉🔥💯🫶🇺🇸⭐✨",
    "\u0000\u0001\u0007\u001f\u007f\u0085\u200b\u200e\ufeff\ufffd",
    "“”‘’«»–—…•·¿¡§¶†‡",
    "€£¥₹©®™°±×÷",
]
def special_cases(specials):
    out = []
    for t in specials:
        out += [f"a {t}b{t}  c", f"{t.upper()} {t.lower()} {t.title()}", f"x{t}"]
    return out


def random_cases(n, seed, specials):
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        length = rng.choice([1, 3, 8, 20, 60, 150, 400, 1500])
        weights = [rng.random() for _ in POOLS]
        out = []
        while len(out) < length:
            if rng.random() < 0.01:
                out.append(rng.choice(specials))
            elif rng.random() < 0.15:
                out.append(" ")
            else:
                pool = rng.choices(POOLS, weights)[0]
                out.append(rng.choice(pool))
        cases.append("".join(out))
    return cases


def main():
    tok_path, out_path = sys.argv[1:3]
    max_length = int(sys.argv[3]) if len(sys.argv) > 3 else MAX_LENGTH
    tok = Tokenizer.from_file(tok_path)
    tok.no_padding()
    tok.enable_truncation(max_length)
    with open(tok_path, encoding="utf-8") as f:
        specials = [t["content"] for t in sorted(json.load(f)["added_tokens"], key=lambda t: t["id"])]
    texts = HAND_PICKED + special_cases(specials) + random_cases(200, seed=20261124, specials=specials)
    cases = []
    for text in texts:
        enc = tok.encode(text)
        if any(m != 1 for m in enc.attention_mask):
            sys.exit(f"unexpected padding in attention mask for {text!r}")
        cases.append({"text": text, "ids": enc.ids})
    with open(tok_path, "rb") as f:
        tok_sha = hashlib.sha256(f.read()).hexdigest()
    doc = {
        "generator": "scripts/model/golden_tokens.py",
        "tokenizers_version": tokenizers.__version__,
        "tokenizer_json_sha256": tok_sha,
        "truncation": max_length,
        "padding": None,
        "cases": cases,
    }
    # One case per line: reviewable diffs, modest size.
    head = json.dumps({k: v for k, v in doc.items() if k != "cases"}, ensure_ascii=False)
    lines = ",\n".join(json.dumps(c, ensure_ascii=False) for c in cases)
    with open(out_path, "w", encoding="utf-8") as f:
        f.write(head[:-1] + ', "cases": [\n' + lines + "\n]}\n")
    print(f"golden_tokens: {len(cases)} cases -> {out_path}")


if __name__ == "__main__":
    main()
