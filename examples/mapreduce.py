"""Map-reduce of Python functions: count the words of many text chunks, then merge the counts.

    scalems-like run --cores 2 --runtime 300 examples/mapreduce.py
"""

import collections

import scalems_like as sl

TEXT = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "and", "the", "dog", "sleeps"]


@sl.function_app
def count_words(chunk: list[str]) -> dict[str, int]:
    return dict(collections.Counter(chunk))


@sl.function_app
def merge(*counts: dict[str, int]) -> dict[str, int]:
    total: collections.Counter[str] = collections.Counter()
    for count in counts:
        total.update(count)
    return dict(total)


chunks = [TEXT[i % len(TEXT):] + TEXT[:i % len(TEXT)] for i in range(200)]   # 200 rotations of the text
words = merge(*count_words.map(chunks)).result()
print(f"'the' appears {words['the']} times in {len(chunks)} chunks; {len(words)} distinct words")
