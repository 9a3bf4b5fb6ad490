"""English and Simplified Chinese: one table of the interface's words, and a dashboard that
switches between them in place (headless)."""
import re

import pytest

from chipviz import i18n
from chipviz import lessons as L
from chipviz.app.dashboard import Dashboard
from chipviz.i18n import STRINGS, Message, placeholders, render, t
from chipviz.nn.trainer import Divergence
from chipviz.session import divergence_message
from chipviz.settings import parse_query
from chipviz.app.network_view import describe_pe, describe_placement
from chipviz.app.pe_array import pe_texts, strip_status
from chipviz.weight_map import GemmOp, WeightMap

CJK = re.compile(r"[\u4e00-\u9fff]")


# ----- the table -----

def test_both_languages_have_the_same_keys_and_placeholders():
    assert i18n.LANGUAGES == ("en", "zh")
    for key, entry in STRINGS.items():
        assert set(entry) == {"en", "zh"}, key
        assert entry["en"].strip() and entry["zh"].strip(), key
        assert placeholders(entry["en"]) == placeholders(entry["zh"]), key
        assert not CJK.search(entry["en"]) or key.startswith("dash.language_"), key


def test_chinese_is_written_out():
    """Most strings differ between the languages; the same ones are technical symbols only."""
    same = {k for k, e in STRINGS.items() if e["en"] == e["zh"]}
    symbols = {"app.title", "dash.language_en", "dash.language_zh", "preset.16", "act.relu", "act.tanh",
               "act.sigmoid", "wm.gemm", "pe.back", "pe.step", "pe.state.MAC", "pe.leg_psum_neg", "energy.mac",
               "energy.sram", "energy.dram", "plot.intensity_value"}
    assert same <= symbols, same - symbols
    assert t("ctl.lr", "zh").startswith("学习率") and t("ctl.batch", "zh") == "批大小"
    assert t("dataflow.ws", "zh") == "权重固定 (ws)" and t("tab.roofline", "zh").startswith("屋顶线模型")


def test_lookup_formats_and_falls_back_to_english():
    assert t("ctl.width", "zh", i=2) == "第 2 层单元数"
    assert t("ctl.width", "fr", i=2) == "Layer 2 units"
    assert t("url.bad_value", "en", key="rows", value="-3", reason="r") == \
        "rows=-3 was ignored: r; the default was kept."


def test_lesson_words_come_from_the_one_table():
    assert set(L.UI["en"]) == set(L.UI["zh"]) == {k[len("lesson."):] for k in STRINGS if k.startswith("lesson.")}
    assert L.ui("zh", "next") == t("lesson.next", "zh")


def test_messages_are_data_rendered_in_each_language():
    m = Message("dash.reset_notice", names=[Message("param.width1"), Message("param.seed")])
    assert str(m) == m.render("en") == "The network was reset because layer 1 units, seed changed."
    assert m.render("zh") == "第 1 层单元数、随机种子已改变，网络已重置。"
    assert m == Message("dash.reset_notice", names=[Message("param.width1"), Message("param.seed")])
    assert render("plain text", "zh") == "plain text"
    with pytest.raises(KeyError):
        Message("no.such.key")


def test_link_notices_are_messages_in_either_language():
    link = parse_query({"rows": "-3", "bogus": "1"})
    bad, unknown = link.notices
    assert bad.render("en") == "rows=-3 was ignored: must be a whole number from 1 to 256; the default was kept."
    assert bad.render("zh") == "rows=-3 已忽略：必须是 1 到 256 之间的整数；保留了默认值。"
    assert unknown.render("zh") == "链接中的未知设置“bogus”已忽略。"


def test_divergence_message_is_translated():
    d = Divergence(step=12, what="loss", value=float("nan"), lr=10.0, kept=11)
    m = divergence_message(d)
    assert m.render("en") == str(d) == ("Training diverged at step 12: the loss became nan (learning rate 10 is "
                                         "probably too high). The weights of step 11 were kept.")
    assert m.render("zh") == "训练在第 12 步发散：损失变成了 nan（学习率 10 可能太高）。保留了第 11 步的权重。"
    w = divergence_message(Divergence(step=3, what="gradient", value=None, lr=0.5, kept=2))
    assert w.render("en").startswith("Training diverged at step 3: a gradient became NaN or infinite")


@pytest.mark.parametrize("dataflow", ["ws", "os", "is"])
@pytest.mark.parametrize("phase", ["forward", "backward_data", "backward_weights"])
def test_weight_placement_words_match_weight_map_in_english(dataflow, phase):
    op = GemmOp(2, phase, "Y = X·W", 5, 6, 7)
    wmap = WeightMap(dataflow, 4, 4, op)
    for fold in range(wmap.folds):
        for r in range(4):
            for c in range(4):
                pe = wmap.weights_on_pe(r, c, fold)
                assert describe_pe(pe, wmap, "en") == pe.describe()
                assert CJK.search(describe_pe(pe, wmap, "zh")) and "{" not in describe_pe(pe, wmap, "zh")
    n_in, n_out = op.weight_shape
    for layer in (1, 2):
        for i in range(n_in):
            for j in range(n_out):
                placement = wmap.pes_for_weight(layer, i, j)
                assert describe_placement(placement, wmap, "en") == placement.describe()
                assert CJK.search(describe_placement(placement, wmap, "zh"))


def test_pe_array_status_parts_are_stripped_in_both_languages():
    assert strip_status("第 1 层 · 前向 · 折叠 3/8 · 周期 41/54") == "第 1 层 · 前向"
    assert set(pe_texts("en")) == set(pe_texts("zh"))
    assert pe_texts("zh")["play"] == "▶ 播放"


# ----- the dashboard -----

@pytest.fixture
def dash():
    d = Dashboard()
    yield d
    d.session.close()


def sample(d: Dashboard) -> dict:
    """A label from every view."""
    plots = d.plots
    return {
        "controls.dataset": d.controls.widgets["dataset"].label,
        "controls.lr": d.controls.widgets["lr"].label,
        "controls.w1": d.controls.widgets["w1"].label,
        "controls.dataflow_options": list(d.controls.widgets["dataflow"].options),
        "controls.train": d.controls.train_button.label,
        "controls.network_card": d.controls.network_card.title,
        "dash.prev": d.prev_button.label,
        "dash.op_select": d.op_select.description,
        "dash.lessons": d.lesson_toggle.label,
        "dash.pe_card": d.card_titles["pe"].object,
        "dash.op_option": list(d.op_select.options)[0],
        "pe.texts": d.pe_array.texts["play"],
        "pe.caption": d.pe_array.caption,
        "pe.labels": d.pe_array.labels["M"],
        "net.clear": d.network._clear.label,
        "net.title": d.network._titles.data["text"][0],
        "net.summary": d.network.summary,
        "plot.loss_title": plots.loss.loss_fig.title.text,
        "plot.loss_x": plots.loss.loss_fig.xaxis.axis_label,
        "plot.loss_legend": plots.loss.loss_fig.legend[0].items[0].label.value,
        "plot.roofline_y": plots.roofline.fig.yaxis.axis_label,
        "plot.energy_legend": plots.energy._energy_items["register"].label.value,
        "plot.energy_phase": list(plots.energy.bar_fig.x_range.factors),
        "plot.boundary_x": plots.boundary.fig.xaxis.axis_label,
        "plot.util_direction": list(plots.utilization.bar_source.data["direction"]),
        "tabs": list(plots._tabs._names),
    }


def test_switching_to_chinese_relabels_every_view_and_back(dash):
    for view in dash.plots.views:
        view.shown = True  # the views of closed tabs draw too, so that every label is compared
    english = sample(dash)
    assert english["controls.dataset"] == "Dataset" and english["tabs"][0] == "Decision boundary"
    assert english["pe.caption"].startswith("layer 1 · forward")
    dash.lang = "zh"
    chinese = sample(dash)
    expected = {
        "controls.dataset": "数据集", "controls.lr": t("ctl.lr", "zh"), "controls.w1": "第 1 层单元数",
        "controls.dataflow_options": ["权重固定 (ws)", "输出固定 (os)", "输入固定 (is)"],
        "controls.train": "▶ 训练", "controls.network_card": "网络", "dash.prev": t("dash.prev_gemm", "zh"),
        "dash.op_select": "芯片上的矩阵乘法", "dash.lessons": "课程",
        "dash.pe_card": f"<b>{t('dash.pe_card', 'zh')}</b>",
        "pe.texts": "▶ 播放", "pe.labels": "批次", "net.clear": "清除选择",
        "plot.loss_x": "训练步数", "plot.loss_legend": "训练（小批量）", "plot.roofline_y": "吞吐量（每周期的 MAC 数）",
        "plot.energy_legend": "寄存器（PE 到 PE）", "plot.boundary_x": "特征 x₁",
        "tabs": ["决策边界", "梯度下降", "利用率", "能耗", "屋顶线模型 (roofline)", "设计空间"],
    }
    for key, value in expected.items():
        assert chinese[key] == value, key
    assert chinese["pe.caption"].startswith("第 1 层 · 前向传播")
    assert chinese["dash.op_option"].startswith("L1 前向：")
    assert chinese["net.title"].startswith("输入层 · ") and "芯片上正在运行" in chinese["net.summary"]
    assert chinese["plot.loss_title"].startswith("损失 —— 第 ")
    assert chinese["plot.energy_phase"][0] == "前向传播" and "反向传播" in chinese["plot.util_direction"]
    assert dash.lessons.lang == "zh" and dash.lang_switch.value == "zh"
    assert "第 " in dash.op_info.object and "个周期" in dash.op_info.object
    dash.lang = "en"
    assert sample(dash) == english


def test_the_language_follows_the_session_without_rebuilding_it(dash):
    session, figure, weights = dash.session, dash.plots.loss.loss_fig, dash.session.snapshot.weights[0].copy()
    step = session.snapshot.step
    dash.lang = "zh"
    session.step(2)
    assert dash.session is session and dash.plots.loss.loss_fig is figure
    assert session.snapshot.step == step + 2 and (session.snapshot.weights[0] != weights).any()
    assert dash.controls.status.object.startswith("<small>第 ") and "步" in dash.controls.status.object
    assert dash.plots.loss.loss_fig.title.text.startswith(f"损失 —— 第 {step + 2} 步")


def test_the_lesson_switch_and_the_sidebar_switch_are_one_setting(dash):
    dash.lessons.lang = "zh"  # the lesson panel's EN/中文 toggle
    assert dash.lang == "zh" and dash.controls.widgets["dataset"].label == "数据集"
    dash.lang_switch.value = "en"  # the sidebar's switch
    assert dash.lang == "en" and dash.lessons.lang == "en" and dash.lessons.lang_toggle.value == "en"


def test_rendered_tabs_are_renamed_in_place(dash):
    import panel as pn

    pn.extension()
    model = dash.plots._tabs.get_root()
    dash.lang = "zh"
    assert [panel.title for panel in model.tabs] == dash.plots.tab_names() == [
        "决策边界", "梯度下降", "利用率", "能耗", "屋顶线模型 (roofline)", "设计空间"]
    dash.lang = "en"
    assert model.tabs[0].title == "Decision boundary"


def test_link_opens_in_chinese():
    d = Dashboard(query={"lang": "zh", "rows": "4"})
    try:
        assert d.lang == "zh" and d.lessons.lang == "zh" and not d.lesson_mode, "lang alone opens no lesson"
        assert d.session.rows == 4 and d.notices == []
        assert d.controls.widgets["rows"].label == "PE 行数" and d.plots.tab_names()[0] == "决策边界"
        assert d.pe_array.texts == pe_texts("zh")
    finally:
        d.session.close()


def test_bad_language_in_the_link_gives_a_notice_and_stays_english():
    d = Dashboard(query={"lang": "xx"})
    try:
        assert d.lang == "en" and d.controls.widgets["dataset"].label == "Dataset"
        assert any("lang=xx" in str(n) for n in d.notices) and d.alert.visible
        assert "lang=xx was ignored" in d.alert.object
        d.lang = "zh"
        assert "lang=xx 已忽略" in d.alert.object
    finally:
        d.session.close()


def test_app_notices_follow_the_language():
    d = Dashboard(query={"rows": "-3", "lang": "zh"})
    try:
        assert "rows=-3 已忽略" in d.alert.object
        d.controls.widgets["w1"].value = 20  # the network is reset: a notice from the app
        assert "第 1 层单元数已改变，网络已重置。" in d.alert.object
        d.lang = "en"
        assert "rows=-3 was ignored" in d.alert.object
        assert "The network was reset because layer 1 units changed." in d.alert.object
    finally:
        d.session.close()


def test_divergence_is_shown_in_the_language_with_the_english_in_the_log(dash, caplog):
    dash.lang = "zh"
    dash.session.param.update(optimizer="sgd", lr=10.0)
    dash.session.width1 = 64
    with caplog.at_level("WARNING", logger="chipviz.app.dashboard"):
        for _ in range(200):
            dash.session.step()
            if dash.session.diverged:
                break
    assert str(dash.session.diverged).startswith("Training diverged")
    assert dash.diverged_alert.visible and "训练在第" in dash.diverged_alert.object
    assert "请降低学习率" in dash.diverged_alert.object and dash.diverged_reset.label == "重置网络"
    assert any("Training diverged" in r.getMessage() for r in caplog.records)
    dash.lang = "en"
    assert dash.diverged_alert.object.startswith("**Training diverged at step")
