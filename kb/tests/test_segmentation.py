"""Segmentation: jieba words for the index and for queries, without noise words."""

import logging

from kb.segmentation import segment, tokenizer
from testing.threads import run_in_threads


def test_chinese_question_keeps_the_topic_words_only():
    result = segment("请问，我买的衣服不合适能退吗？")
    assert result.terms == ["买", "衣服", "合适", "退"]
    assert result.chars == ["衣", "服", "合", "适"]


def test_search_mode_yields_sub_words_of_long_words():
    assert segment("增值税专用发票").terms == ["增值", "增值税", "专用", "发票", "专用发票"]


def test_domain_words_stay_whole():
    # jieba alone cuts 钱包/邮 ("wallet") and 开专票 as one unknown word
    assert "包邮" in segment("买多少钱包邮").terms
    assert "专票" in segment("公司采购需要开专票").terms
    assert "运费险" in segment("运费险怎么赔").terms


def test_english_is_lowercased_without_stop_words_and_full_width_is_folded():
    assert segment("How do I get a VAT Invoice?").terms == ["get", "vat", "invoice"]
    assert segment("ＶＩＰ会员").terms == ["vip", "会员"]


def test_punctuation_and_symbols_never_become_terms():
    assert segment("“申请售后”——！！！ @#￥%……&*（）").terms == ["申请", "售后"]
    assert segment("").terms == [] and segment("的了吗呢？").terms == []


def test_the_tokenizer_loads_once_across_threads_and_quietly(caplog):
    with caplog.at_level(logging.DEBUG):
        seen = run_in_threads(*[tokenizer] * 8, timeout=60)
    assert len(seen) == 8 and len({id(instance) for instance in seen}) == 1
    assert not [record for record in caplog.records if record.name.startswith("jieba")]
