"""The interface's words in English and Simplified Chinese: one table, one lookup.

No panel or bokeh import: the table is checked headless (both languages have the same keys and
the same {placeholders}). Every view takes a language (`lang`, "en" or "zh") and asks
``t(key, lang, **values)`` for its labels, so switching the language relabels the page in
place. Technical symbols (Y = X·W, dW = Xᵀ·dY, ws/os/is, fp32/int8, MAC, PE, SRAM, DRAM) are
the same in both languages.

``Msg`` is a string that remembers its key and values, so a notice shown in one language can
be shown again in the other (``relabel(text, lang)``); a plain string is left as it is.
"""
from __future__ import annotations

import re
import string

LANGUAGES = ("en", "zh")
DEFAULT_LANGUAGE = "en"


def _e(en: str, zh: str) -> dict[str, str]:
    return {"en": en, "zh": zh}


# key -> {"en": ..., "zh": ...}
STRINGS: dict[str, dict[str, str]] = {
    # ----- lesson mode (LessonView and lessons.py: lessons.UI is built from the "lesson." keys) -----
    "lesson.lesson": _e("Lesson", "课程"),
    "lesson.back": _e("◀ Back", "◀ 上一步"),
    "lesson.next": _e("Next ▶", "下一步 ▶"),
    "lesson.step_of": _e("Step {i} of {n}", "第 {i} 步，共 {n} 步"),
    "lesson.goals": _e("Learning goals", "学习目标"),
    "lesson.look": _e("Look", "观察"),
    "lesson.question": _e("Predict, then run", "先预测，再运行"),
    "lesson.check": _e("Check", "检查"),
    "lesson.your_answer": _e("Your answer", "你的答案"),
    "lesson.number_hint": _e("a number, e.g. 14", "一个数，例如 14"),
    "lesson.exercises": _e("For the teacher: exercises with answers", "教师用：练习与答案"),
    "lesson.answer": _e("Answer", "答案"),
    "lesson.right": _e("Right!", "正确！"),
    "lesson.wrong": _e("Not quite.", "不太对。"),
    "lesson.you_said": _e("You said {given}; the simulator says {expected}.",
                          "你的答案是 {given}；模拟器算出的是：{expected}。"),
    "lesson.simulator_says": _e("The simulator says {expected}.", "模拟器算出的是：{expected}。"),
    "lesson.not_a_number": _e("“{given}” is not a number. Type digits such as 14, 0.25 or 28.6%.",
                              "“{given}”不是一个数。请输入数字，例如 14、0.25 或 28.6%。"),
    "lesson.empty": _e("Type your answer first.", "请先输入答案。"),
    "lesson.choose_one": _e("Pick one of the answers first.", "请先选择一个答案。"),
    "lesson.language": _e("Language", "语言"),
    "lesson.lesson_mode": _e("Lessons", "课程"),
    "lesson.done": _e("End of the lesson: choose the next one above.", "本课结束：请在上方选择下一课。"),
    "lesson.yes": _e("yes", "是"),
    "lesson.no": _e("no", "否"),
    "lesson.memory": _e("memory-bound", "受内存带宽限制"),
    "lesson.compute": _e("compute-bound", "受计算能力限制"),
    "lesson.step_title": _e("Step {i}: {title}", "第 {i} 步：{title}"),
    "lesson.unknown_lang": _e("lang={value} was ignored: must be one of {allowed}.",
                              "lang={value} 已忽略：只能是 {allowed}。"),
    "lesson.unknown_lesson": _e("lesson={value} was ignored: there are lessons {allowed}.",
                                "lesson={value} 已忽略：现有课程为 {allowed}。"),
    "lesson.bad_step": _e("step={value} was ignored: lesson {lesson} has steps 1 to {n}.",
                          "step={value} 已忽略：第 {lesson} 课只有第 1 到第 {n} 步。"),
    "lesson.bad_control": _e("{which}={value} was ignored: unknown control(s) {bad} (allowed: {allowed}).",
                             "{which}={value} 已忽略：未知控件 {bad}（可用：{allowed}）。"),
    "lesson.cycle_clamped": _e("The step asks for cycle {cycle}, but this GEMM has only {total} cycles; "
                               "the last one is shown.",
                               "这一步要显示第 {cycle} 个周期，但这个矩阵乘法只有 {total} 个周期；显示最后一个周期。"),
    "lesson.op_missing": _e("The step shows {op}, which this network does not compute; the first GEMM is shown.",
                            "这一步要显示 {op}，但这个网络不计算它；显示第一个矩阵乘法。"),

    # ----- shared words -----
    "list_sep": _e(", ", "、"),
    "phase.forward": _e("forward", "前向传播"),
    "phase.backward_data": _e("backward (data)", "反向传播（输入梯度）"),
    "phase.backward_weights": _e("backward (weights)", "反向传播（权重梯度）"),
    "phase.update": _e("update", "参数更新"),
    "direction.forward": _e("forward", "前向传播"),
    "direction.backward": _e("backward", "反向传播"),
    "direction.update": _e("update", "参数更新"),

    # ----- the page and the dashboard -----
    "app.title": _e("ChipViz", "ChipViz"),
    "app.subtitle": _e("a neural network training on a systolic-array chip", "在脉动阵列芯片上训练的神经网络"),
    "dash.language_en": _e("English", "English"),
    "dash.language_zh": _e("简体中文", "简体中文"),
    "dash.op_select": _e("Matrix multiply on the chip", "芯片上的矩阵乘法"),
    "dash.scrub": _e("Cycle (drag to scrub)", "周期（拖动以定位）"),
    "dash.prev_gemm": _e("◀ previous GEMM", "◀ 上一个矩阵乘法"),
    "dash.next_gemm": _e("next GEMM ▶", "下一个矩阵乘法 ▶"),
    "dash.next_phase": _e("next phase ▶▶", "下一阶段 ▶▶"),
    "dash.follow": _e("follow training", "跟随训练"),
    "dash.dismiss": _e("Dismiss", "关闭"),
    "dash.reset_network": _e("Reset the network", "重置网络"),
    "dash.pe_card": _e("The PE array, cycle by cycle", "处理单元 (PE) 阵列，逐周期"),
    "dash.network_card": _e("The network", "神经网络"),
    "dash.op_option": _e("L{layer} {phase}: {name}  ({shape})", "L{layer} {phase}：{name}  ({shape})"),
    "dash.no_step": _e("Press “{step}” or “{train}”: the first training step fills the chip.",
                       "按“{step}”或“{train}”：第一个训练步骤会把网络放到芯片上。"),
    "dash.op_info": _e("layer {layer} · {phase} · {name}</b> · step {step} · {folds} folds · {cycles} cycles · "
                       "utilisation {util} · mapping efficiency {mapping} · {energy} nJ",
                       "第 {layer} 层 · {phase} · {name}</b> · 第 {step} 步 · {folds} 次折叠 · {cycles} 个周期 · "
                       "利用率 {util} · 映射效率 {mapping} · {energy} nJ"),
    "dash.caption": _e("layer {layer} · {phase} · {name}", "第 {layer} 层 · {phase} · {name}"),
    "dash.too_large": _e("{rows}×{cols} is too large to animate (up to {max}×{max}); the numbers above are exact.",
                         "{rows}×{cols} 的阵列太大，无法播放动画（最多 {max}×{max}）；上面的数字是精确的。"),
    "dash.trace_error": _e("{error}", "无法播放这个矩阵乘法的动画：{error}"),
    "dash.dim.batch": _e("batch", "批次"),
    "dash.dim.inputs": _e("inputs", "输入"),
    "dash.dim.units": _e("units", "单元"),
    "dash.reset_notice": _e("The network was reset because {names} changed.", "{names}已改变，网络已重置。"),
    "dash.unknown_setting": _e("Unknown setting “{key}” in the link was ignored.", "链接中的未知设置“{key}”已忽略。"),
    "dash.bad_value": _e("{key}={value} was ignored: {reason}; the default was kept.",
                         "{key}={value} 已忽略：{reason}；保留了默认值。"),
    "dash.diverged": _e("**{detail}** Lower the learning rate and reset.", "**{detail}** 请降低学习率，然后重置。"),
    "dash.diverged_detail": _e("Training diverged at step {step}: {what} (learning rate {lr} is probably too "
                               "high). The weights of step {kept} were kept.",
                               "训练在第 {step} 步发散：{what}（学习率 {lr} 可能太高）。保留了第 {kept} 步的权重。"),
    "dash.diverged_lead": _e("Training diverged: {detail}", "训练发散了：{detail}"),
    "dash.what.loss": _e("the loss became {value}", "损失变成了 {value}"),
    "dash.what.weight": _e("a weight became NaN or infinite", "某个权重变成了 NaN 或无穷大"),
    "dash.what.gradient": _e("a gradient became NaN or infinite", "某个梯度变成了 NaN 或无穷大"),
    # reasons a URL value was refused (chipviz.settings.convert's words)
    "reason.one_of": _e("must be one of {allowed}", "只能是 {allowed} 之一"),
    "reason.bool": _e("must be true or false", "只能是 true 或 false"),
    "reason.whole": _e("must be a whole number from {low} to {high}", "必须是 {low} 到 {high} 之间的整数"),
    "reason.number": _e("must be a number from {low} to {high}", "必须是 {low} 到 {high} 之间的数"),
    "reason.too_long": _e("is too long", "太长"),
    "reason.not_settable": _e("cannot be set from a link", "不能通过链接设置"),

    # ----- the sidebar (Controls) -----
    "ctl.dataset": _e("Dataset", "数据集"),
    "ctl.hidden": _e("Hidden layers", "隐藏层数"),
    "ctl.width": _e("Layer {i} units", "第 {i} 层单元数"),
    "ctl.act": _e("Activation", "激活函数"),
    "ctl.opt": _e("Optimizer", "优化器"),
    "ctl.lr": _e("Learning rate α (log scale)", "学习率 α（对数刻度）"),
    "ctl.batch": _e("Batch size", "批大小"),
    "ctl.seed": _e("Seed", "随机种子"),
    "ctl.precision": _e("Precision", "精度"),
    "ctl.noise": _e("Noise (2-D sets)", "噪声（二维数据集）"),
    "ctl.rows": _e("PE rows", "PE 行数"),
    "ctl.cols": _e("PE columns", "PE 列数"),
    "ctl.dataflow": _e("Dataflow", "数据流"),
    "ctl.clock": _e("Clock (MHz)", "时钟频率 (MHz)"),
    "ctl.sram": _e("SRAM per buffer (KiB)", "每个缓冲区的 SRAM (KiB)"),
    "ctl.bw": _e("DRAM bandwidth (bytes/cycle)", "DRAM 带宽（字节/周期）"),
    "ctl.speed": _e("Speed (steps per second)", "速度（每秒步数）"),
    "ctl.preset": _e("Chip preset", "芯片预设"),
    "ctl.train": _e("▶ Train", "▶ 训练"),
    "ctl.pause": _e("⏸ Pause", "⏸ 暂停"),
    "ctl.step": _e("One step", "单步"),
    "ctl.reset": _e("Reset", "重置"),
    "ctl.network_card": _e("Network", "网络"),
    "ctl.chip_card": _e("Chip", "芯片"),
    "ctl.status": _e("step {step} · epoch {epoch}{acc}", "第 {step} 步 · 第 {epoch} 轮{acc}"),
    "ctl.status_acc": _e(" · test accuracy {acc}", " · 测试准确率 {acc}"),
    "ctl.status_busy": _e("{n} sessions are training on this server, so the plots refresh every {every} s",
                          "本服务器上有 {n} 个会话在训练，图表每 {every} 秒刷新一次"),
    "preset.custom": _e("custom", "自定义"),
    "preset.classroom": _e("4×4 classroom array", "4×4 课堂阵列"),
    "preset.default": _e("8×8 (default)", "8×8（默认）"),
    "preset.16": _e("16×16", "16×16"),
    "preset.tpu_v1": _e("TPU v1 (256×256, numbers only)", "TPU v1（256×256，只算数字）"),
    "dataset.digits": _e("digits", "手写数字 (digits)"),
    "dataset.circle": _e("circle", "圆环 (circle)"),
    "dataset.xor": _e("xor", "异或 (xor)"),
    "dataset.gauss": _e("gauss", "高斯簇 (gauss)"),
    "dataset.spiral": _e("spiral", "螺旋 (spiral)"),
    "dataset.moons": _e("moons", "双月 (moons)"),
    "act.relu": _e("relu", "relu"),
    "act.tanh": _e("tanh", "tanh"),
    "act.sigmoid": _e("sigmoid", "sigmoid"),
    "act.linear": _e("linear", "线性 (linear)"),
    "opt.sgd": _e("sgd", "随机梯度下降 (sgd)"),
    "opt.momentum": _e("momentum", "动量法 (momentum)"),
    "opt.adam": _e("adam", "Adam (adam)"),
    "dataflow.ws": _e("weight-stationary (ws)", "权重固定 (ws)"),
    "dataflow.os": _e("output-stationary (os)", "输出固定 (os)"),
    "dataflow.is": _e("input-stationary (is)", "输入固定 (is)"),
    "param.dataset": _e("dataset", "数据集"),
    "param.hidden_layers": _e("hidden layers", "隐藏层数"),
    "param.width1": _e("layer 1 units", "第 1 层单元数"),
    "param.width2": _e("layer 2 units", "第 2 层单元数"),
    "param.width3": _e("layer 3 units", "第 3 层单元数"),
    "param.width4": _e("layer 4 units", "第 4 层单元数"),
    "param.activation": _e("activation", "激活函数"),
    "param.seed": _e("seed", "随机种子"),
    "param.noise": _e("noise", "噪声"),

    # ----- the network view -----
    "net.input": _e("input", "输入层"),
    "net.output": _e("output", "输出层"),
    "net.hidden": _e("hidden {i}", "隐藏层 {i}"),
    "net.more": _e("⋮ {n} more", "⋮ 另有 {n} 个"),
    "net.tip_weight": _e("weight", "权重"),
    "net.tip_link": _e("link", "连接"),
    "net.tip_unit": _e("unit", "单元"),
    "net.tip_bias": _e("bias", "偏置"),
    "net.clear": _e("Clear selection", "清除选择"),
    "net.legend_width": _e("width, opacity ∝ |w|", "线宽、不透明度 ∝ |w|"),
    "net.legend_bias": _e("unit fill: bias", "单元填充色：偏置"),
    "net.legend_forward": _e("forward on chip", "芯片上的前向传播"),
    "net.legend_backward": _e("backward on chip", "芯片上的反向传播"),
    "net.legend_pe": _e("used by the selected PE", "所选 PE 用到的权重"),
    "net.legend_selected": _e("selected link", "所选连接"),
    "net.no_step": _e("No training step has run yet: press step or play to put the network on the chip.",
                      "还没有运行训练步骤：按“单步”或“训练”把网络放到芯片上。"),
    "net.now": _e("On the chip now ({i} of {n}, step {step}): {what} on the {unit}",
                  "芯片上正在运行（第 {i} 项，共 {n} 项，第 {step} 步）：{what}（{unit}）"),
    "net.layer": _e("layer {layer}", "第 {layer} 层"),
    "net.all_layers": _e("all layers", "所有层"),
    "net.pe_array": _e("PE array", "PE 阵列"),
    "net.vector_unit": _e("vector unit", "向量单元"),
    "net.compact": _e("Network {shape}: layers wider than {max} units show {compact} (⋮ counts the rest); next "
                      "to such a layer only the {links} strongest links are drawn — {drawn} of {total} links shown.",
                      "网络 {shape}：超过 {max} 个单元的层只画出 {compact} 个（⋮ 表示其余的）；与这种层相连的只画出"
                      "最强的 {links} 条连接——共 {total} 条，画出 {drawn} 条。"),
    "net.sel_gone": _e("The selected weight {weight} is not in this network (it was reset).",
                       "所选权重 {weight} 不在这个网络中（网络已重置）。"),
    "net.sel_weight": _e("**{weight} = {value}** — from {src} unit {i} to {dst} unit {j}.",
                         "**{weight} = {value}** —— 从{src}的单元 {i} 到{dst}的单元 {j}。"),
    "net.other_layer": _e("The chip is running '{label}' (layer {layer}), not this weight's layer.",
                          "芯片正在运行“{label}”（第 {layer} 层），不是这个权重所在的层。"),
    "net.on_vector": _e("The chip is running '{name}' on its vector unit: no weights are on the PE array.",
                        "芯片正在向量单元上运行“{name}”：PE 阵列上没有权重。"),
    "net.others": _e("In this step's other matrix multiplies of layer {layer}:",
                     "本步骤中第 {layer} 层的其他矩阵乘法："),
    "net.drawn_of": _e(" ({drawn} of these {n} links are drawn.)", "（这 {n} 条连接中画出了 {drawn} 条。）"),
    "net.yellow": _e("Yellow links: ", "黄色连接："),
    "net.click": _e("Click a link to see where its weight sits on the PE array.",
                    "点击一条连接，查看它的权重位于 PE 阵列的哪个位置。"),
    "net.pe_no_weights": _e("PE({row}, {col}): the PE array is not working on weights now ({what}).",
                            "PE({row}, {col})：PE 阵列现在没有处理权重（{what}）。"),
    "net.runs_on_vector": _e("'{name}' runs on the vector unit", "“{name}”在向量单元上运行"),
    "net.no_step_yet": _e("no step has run yet", "还没有运行任何训练步骤"),
    "net.pe_outside": _e("PE({row}, {col}) is outside the {rows}×{cols} array.",
                         "PE({row}, {col}) 在 {rows}×{cols} 阵列之外。"),
    # where weights sit on the array (the words of chipviz.weight_map's describe())
    "wm.phase.forward": _e("fwd", "前向"),
    "wm.phase.backward_data": _e("bwd data", "反向数据"),
    "wm.phase.backward_weights": _e("bwd weights", "反向权重"),
    "wm.gemm": _e("L{layer} {phase} {name}", "L{layer} {phase} {name}"),
    "wm.quoted": _e("'{text}'", "“{text}”"),
    "wm.op": _e("'{label}' ({dataflow})", "“{label}”({dataflow})"),
    "wm.fold": _e("fold {i} of {n}", "第 {i} 次折叠（共 {n} 次）"),
    "wm.folds_one": _e("fold {list} of {n}", "第 {list} 次折叠（共 {n} 次）"),
    "wm.folds_many": _e("folds {list} of {n}", "第 {list} 次折叠（共 {n} 次）"),
    "wm.more": _e(", … ({n} in all)", "，…（共 {n} 个）"),
    "wm.sentence": _e("{text}. {note}", "{text}。{note}"),
    "wm.pe_where": _e("PE({row}, {col}) in {fold} of {op}", "{op}的{fold}中，PE({row}, {col})"),
    "wm.pe_idle": _e("{where} is idle: {note}", "{where}空闲：{note}"),
    "wm.pe_holds": _e("{where} holds {list}", "{where}存放 {list}"),
    "wm.pe_streams": _e("{where} sees {list} stream through", "{where}看到 {list} 依次流过"),
    "wm.pe_accumulates": _e("{where} accumulates {list}", "{where}累加 {list}"),
    "wm.pe_sums": _e("{where} adds partial sums of {list}", "{where}累加 {list} 的部分和"),
    "wm.note_idle": _e("this partial fold's tile uses only {r} of {rows} rows and {c} of {cols} columns",
                       "这次不满的折叠只用到 {rows} 行中的 {r} 行和 {cols} 列中的 {c} 列"),
    "wm.who_inputs": _e("its inputs", "输入"),
    "wm.who_gradients": _e("the output gradients", "输出梯度"),
    "wm.note_ws_holds": _e("Every row of {who} streams past it ({m} in all).", "{who}的每一行都从它这里流过（共 {m} 行）。"),
    "wm.note_os_streams": _e("It accumulates {what}[{r}, {c}] (batch sample {r}), one weight per cycle.",
                             "它累加 {what}[{r}, {c}]（批次中的样本 {r}），每个周期用一个权重。"),
    "wm.note_is_streams": _e("It holds no weight: it keeps {what}[{c}, {r}] (batch sample {c}) and the weights "
                             "pass through, one per cycle.",
                             "它不存放权重：它保存 {what}[{c}, {r}]（批次中的样本 {c}），权重从它这里流过，每个周期一个。"),
    "wm.note_os_accumulates": _e("It sums X[b, {r}]·dY[b, {c}] over the batch (b = 0…{last}).",
                                 "它对整个批次累加 X[b, {r}]·dY[b, {c}]（b = 0…{last}）。"),
    "wm.note_ws_sums": _e("It holds dY[{r}, {c}] (batch sample {r}) and adds its share of each gradient in "
                          "column {c} of dW.",
                          "它存放 dY[{r}, {c}]（批次中的样本 {r}），并为 dW 第 {c} 列的每个梯度加上自己的一份。"),
    "wm.note_is_sums": _e("It holds X[{r}, {c}] (batch sample {r}, input unit {c}) and adds its share of each "
                          "gradient in row {c} of dW.",
                          "它存放 X[{r}, {c}]（批次中的样本 {r}，输入单元 {c}），并为 dW 第 {c} 行的每个梯度加上自己的一份。"),
    "wm.w_unused": _e("{weight}: the chip is running {label}, which works on layer {op_layer}, not layer {layer}.",
                      "{weight}：芯片正在运行 {label}，它处理第 {op_layer} 层，而不是第 {layer} 层。"),
    "wm.w_holds": _e("{weight} sits in PE({r}, {c}) during {fold} of {op}", "在{op}的{fold}中，{weight} 位于 PE({r}, {c})"),
    "wm.w_accumulates": _e("{weight} is accumulated in PE({r}, {c}) during {fold} of {op}",
                           "在{op}的{fold}中，{weight} 在 PE({r}, {c}) 里累加"),
    "wm.down_column": _e("down column {col} (PE rows {first}…{last})", "沿第 {col} 列向下（PE 第 {first}…{last} 行）"),
    "wm.along_row": _e("along row {row} (PE columns {first}…{last})", "沿第 {row} 行（PE 第 {first}…{last} 列）"),
    "wm.w_streams": _e("{weight} streams {line} in {folds} of {op}", "在{op}的{folds}中，{weight} {line}流过"),
    "wm.w_sums": _e("{weight} is summed {line} in {folds} of {op}", "在{op}的{folds}中，{weight} {line}求和"),
    "wm.note_w_os": _e("It enters the column at cycle {k} of each fold, reaches PE(r, c) at cycle {k} + r + c and "
                       "meets every row of the batch.",
                       "它在每次折叠的第 {k} 个周期进入这一列，在第 {k} + r + c 个周期到达 PE(r, c)，与批次的每一行相遇。"),
    "wm.note_w_is": _e("It enters the row at step {n} of each fold and meets every input held there; the PEs hold "
                       "inputs, not weights.",
                       "它在每次折叠的第 {n} 步进入这一行，与那里存放的每个输入相遇；这些 PE 存放的是输入，不是权重。"),
    "wm.note_not_on_chip": _e("{weight} itself is not on the chip in this GEMM.",
                              "在这个矩阵乘法中，{weight} 本身不在芯片上。"),
    "wm.note_w_sums": _e("Each fold adds the share of {samples} batch samples; the output buffer adds up the "
                         "{folds} fold(s). {weight} itself is not on the chip in this GEMM.",
                         "每次折叠加上 {samples} 个批次样本的贡献；输出缓冲区把 {folds} 次折叠的结果相加。"
                         "在这个矩阵乘法中，{weight} 本身不在芯片上。"),

    # ----- the PE array (sent to the browser as PEArrayView.texts) -----
    "pe.play": _e("▶ Play", "▶ 播放"),
    "pe.pause": _e("▮▮ Pause", "▮▮ 暂停"),
    "pe.back": _e("◀ −1", "◀ −1"),
    "pe.step": _e("+1 ▶", "+1 ▶"),
    "pe.fold": _e("next fold ▶▶", "下一次折叠 ▶▶"),
    "pe.play_title": _e("Play / pause (space)", "播放 / 暂停（空格键）"),
    "pe.back_title": _e("One cycle back (←)", "后退一个周期 (←)"),
    "pe.step_title": _e("One cycle on (→)", "前进一个周期 (→)"),
    "pe.fold_title": _e("Jump to the first cycle of the next fold", "跳到下一次折叠的第一个周期"),
    "pe.speed": _e("speed", "速度"),
    "pe.fps": _e("{fps} cycles/s", "{fps} 周期/秒"),
    "pe.live_fold": _e("fold {i} of {n}", "折叠 {i}/{n}"),
    "pe.live_cycle": _e("cycle {i} of {n}", "周期 {i}/{n}"),
    "pe.no_trace": _e("no trace loaded", "未加载轨迹"),
    "pe.busy": _e("{macs} of {pes} PEs doing a MAC", "{pes} 个 PE 中有 {macs} 个在做 MAC"),
    "pe.loading": _e(" · loading the next cycles…", " · 正在加载后面的周期…"),
    "pe.selected_pe": _e(" · selected PE ({row}, {col})", " · 已选 PE ({row}, {col})"),
    "pe.aria": _e("{rows}×{cols} PE array, {live}", "{rows}×{cols} PE 阵列，{live}"),
    "pe.axis_cols": _e("cols: {dim}", "列：{dim}"),
    "pe.axis_rows": _e("rows: {dim}", "行：{dim}"),
    "pe.dim.M": _e("rows of A and C", "A 和 C 的行"),
    "pe.dim.K": _e("inner dimension", "内维度"),
    "pe.dim.N": _e("columns of B and C", "B 和 C 的列"),
    "pe.state.idle": _e("idle", "空闲"),
    "pe.state.MAC": _e("MAC", "MAC"),
    "pe.state.preload": _e("preload", "预加载"),
    "pe.state.stall": _e("stall", "停顿"),
    "pe.leg_psum_pos": _e("psum > 0 (size = |psum|)", "psum > 0（大小 = |psum|）"),
    "pe.leg_psum_neg": _e("psum < 0", "psum < 0"),
    "pe.leg_moving": _e("moving operand in the PE", "PE 中流动的操作数"),
    "pe.leg_highlighted": _e("highlighted", "高亮"),
    "pe.leg_selected": _e("selected", "已选中"),
    "pe.edge_left": _e("Left edge: {what} enters (green). ", "左边（绿色）：{what}进入。"),
    "pe.edge_top_os": _e("Top edge: {what} enters (green). Finished C tile is read out after each fold.",
                         "上边（绿色）：{what}进入。每次折叠结束后读出完成的 C 分块。"),
    "pe.edge_top": _e("Top edge: {top} (sky blue). Bottom edge: {bottom} leaves (blue).",
                      "上边（天蓝色）：{top}。下边（蓝色）：{bottom}离开。"),
    "pe.corner_stationary": _e(" Corner number: the stationary {what} value.", "角上的数字：固定的 {what} 值。"),
    "pe.corner_psum": _e(" Corner number: the accumulated C value.", "角上的数字：累加的 C 值。"),
    "pe.corner_square": _e(" Blue corner square: the stationary {what} value (size = |value|, hollow < 0).",
                           "蓝色角标方块：固定的 {what} 值（大小 = |值|，空心表示 < 0）。"),
    "pe.hover_hint": _e(" Hover a PE for its registers; click to select it.", "把鼠标移到 PE 上可查看寄存器；点击可选中。"),
    "pe.role.ws.left_in": _e("row m of A", "A 的第 m 行"),
    "pe.role.ws.top_in": _e("row k of B (preload)", "B 的第 k 行（预加载）"),
    "pe.role.ws.bottom_out": _e("row m of C", "C 的第 m 行"),
    "pe.role.is.left_in": _e("column n of B", "B 的第 n 列"),
    "pe.role.is.top_in": _e("column k of A (preload)", "A 的第 k 列（预加载）"),
    "pe.role.is.bottom_out": _e("column n of C", "C 的第 n 列"),
    "pe.role.os.left_in": _e("column k of A", "A 的第 k 列"),
    "pe.role.os.top_in": _e("row k of B", "B 的第 k 行"),
    "pe.tip_no_trace": _e("no trace loaded", "未加载轨迹"),
    "pe.tip_head": _e("PE (row {row}, col {col})", "PE（第 {row} 行，第 {col} 列）"),
    "pe.tip_fold": _e("fold {i} of {n}", "折叠 {i}/{n}"),
    "pe.tip_stationary": _e("stationary", "固定"),
    "pe.tip_moving": _e("moving", "流动"),
    "pe.tip_from_left": _e("(from the left)", "（来自左边）"),
    "pe.tip_from_top": _e("(from the top)", "（来自上边）"),
    "pe.tip_unmapped": _e("not mapped: this fold's tile does not reach this PE", "未映射：这次折叠的分块没有用到这个 PE"),
    "pe.tip_unknown": _e("computing a product (entered before the recorded cycles)",
                         "正在计算一个乘积（操作数在记录的周期之前进入）"),
    "pe.tip_preload": _e("preloading the stationary operand{elem}: it shifts down one row per cycle",
                         "正在预加载固定操作数{elem}：它每个周期向下移动一行"),
    "pe.tip_stall": _e("stalled: the array waits for memory", "停顿：阵列在等待内存"),
    "pe.tip_idle": _e("idle: no operand pair meets here this cycle (the pipeline is preloading, filling or draining)",
                      "空闲：这个周期没有操作数在这里相遇（流水线正在预加载、填充或排空）"),

    # ----- the live plots -----
    "tab.training": _e("Training", "训练"),
    "tab.descent": _e("Gradient descent", "梯度下降"),
    "tab.utilization": _e("Utilisation", "利用率"),
    "tab.energy": _e("Energy", "能耗"),
    "tab.roofline": _e("Roofline", "屋顶线模型 (roofline)"),
    "plot.step": _e("step", "步"),
    "plot.training_step": _e("training step", "训练步数"),
    "plot.train_batch": _e("train (mini-batch)", "训练（小批量）"),
    "plot.test": _e("test", "测试"),
    "plot.loss": _e("Loss", "损失"),
    "plot.loss_axis": _e("loss (cross-entropy)", "损失（交叉熵）"),
    "plot.loss_tip": _e("loss", "损失"),
    "plot.loss_title": _e("Loss — step {step}", "损失 —— 第 {step} 步"),
    "plot.loss_title_train": _e(": train {loss}", "：训练 {loss}"),
    "plot.loss_title_test": _e(", test {loss}", "，测试 {loss}"),
    "plot.accuracy": _e("Accuracy", "准确率"),
    "plot.accuracy_axis": _e("accuracy", "准确率"),
    "plot.accuracy_title_test": _e(" — test {acc}", " —— 测试 {acc}"),
    "plot.log_loss": _e("logarithmic loss axis", "损失轴用对数刻度"),
    "plot.util_bars": _e("PE utilisation per matrix multiply", "每个矩阵乘法的 PE 利用率"),
    "plot.util_bars_step": _e(", step {step}", "，第 {step} 步"),
    "plot.no_step": _e(" (no step yet)", "（还没有训练步骤）"),
    "plot.util_share": _e("share of the array's PE-cycles", "占阵列 PE 周期的比例"),
    "plot.mapping_outline": _e("mapping efficiency (outline)", "映射效率（虚线框）"),
    "plot.gemm": _e("GEMM", "矩阵乘法"),
    "plot.shape": _e("shape", "形状"),
    "plot.utilisation": _e("utilisation", "利用率"),
    "plot.mapping": _e("mapping efficiency", "映射效率"),
    "plot.folds": _e("folds", "折叠次数"),
    "plot.cycles": _e("cycles", "周期数"),
    "plot.util_time": _e("Utilisation of each step", "每一步的利用率"),
    "plot.util_time_last": _e("Utilisation of each step — last: {util}", "每一步的利用率 —— 最近一步：{util}"),
    "plot.pe_util": _e("PE utilisation", "PE 利用率"),
    "plot.gemm_phase.forward": _e("fwd", "前向"),
    "plot.gemm_phase.backward_data": _e("bwd-data", "反向-数据"),
    "plot.gemm_phase.backward_weights": _e("bwd-wt", "反向-权重"),
    "plot.gemm_phase.update": _e("update", "更新"),
    "plot.energy_last": _e("Energy of the last step", "最近一步的能耗"),
    "plot.energy_last_none": _e("Energy of the last step (no step yet)", "最近一步的能耗（还没有训练步骤）"),
    "plot.energy_step": _e("Energy of step {step}: {total} {unit}, {dram} DRAM", "第 {step} 步的能耗：{total} {unit}，DRAM 占 {dram}"),
    "plot.not_drawn": _e(" (not drawn)", "（未画出）"),
    "plot.energy_axis": _e("energy per step ({unit})", "每步能耗（{unit}）"),
    "plot.energy_time": _e("Energy of each step", "每一步的能耗"),
    "plot.energy_tip": _e("energy", "能耗"),
    "plot.phase_tip": _e("phase", "阶段"),
    "plot.component": _e("component", "组件"),
    "plot.include_dram": _e("include DRAM (untick to see the on-chip components)", "包含 DRAM（取消勾选可看清片上各部分）"),
    "energy.mac": _e("MAC", "MAC"),
    "energy.register": _e("register (PE to PE)", "寄存器（PE 到 PE）"),
    "energy.sram": _e("SRAM", "SRAM"),
    "energy.dram": _e("DRAM", "DRAM"),
    "energy.vector": _e("vector unit", "向量单元"),
    "plot.roofline": _e("Roofline", "屋顶线模型 (roofline)"),
    "plot.roofline_title": _e("Roofline of the {rows}×{cols} {dataflow} array (ridge at {ridge} MACs/B)",
                              "{rows}×{cols} {dataflow} 阵列的屋顶线（脊点在 {ridge} MACs/B）"),
    "plot.intensity_axis": _e("arithmetic intensity (MACs per DRAM byte)", "算术强度（每个 DRAM 字节的 MAC 数）"),
    "plot.throughput_axis": _e("throughput (MACs per cycle)", "吞吐量（每周期的 MAC 数）"),
    "plot.roof": _e("roof (attainable)", "屋顶（可达上限）"),
    "plot.animated_now": _e("animated now", "正在播放"),
    "plot.layer": _e("layer", "层"),
    "plot.intensity": _e("intensity", "算术强度"),
    "plot.achieved": _e("achieved", "实际达到"),
    "plot.attainable": _e("attainable", "可达上限"),
    "plot.macs_per_cycle": _e("MACs/cycle", "MACs/周期"),
    "plot.intensity_value": _e("{value} MACs/B", "{value} MACs/B"),
    "plot.intensity_inf": _e("∞ (no DRAM traffic; drawn at the right edge)", "∞（没有 DRAM 访问；画在最右边）"),
    "plot.peak": _e("peak R·C = {pes} MACs/cycle", "峰值 R·C = {pes} MACs/周期"),
    "plot.dram_roof": _e("DRAM roof: {bw} B/cycle × intensity", "DRAM 屋顶：{bw} B/周期 × 算术强度"),
    "plot.roofline_note": _e(
        "**How to read it.** A point's height is the multiply-accumulates (MACs) per cycle the GEMM achieved; the "
        "roof above it is the most the chip could do at that arithmetic intensity: left of the dotted ridge, DRAM "
        "bandwidth limits it (memory-bound), right of it the R·C processing elements do (compute-bound). The gap "
        "below the roof is time lost to filling and draining the array and to PEs left idle by the mapping.",
        "**怎么读这张图。** 点的高度是这个矩阵乘法每个周期实际完成的乘累加 (MAC) 次数；它上方的屋顶是芯片在这个"
        "算术强度下最多能做到的：在虚线脊点左边，受 DRAM 带宽限制（受内存带宽限制），在右边，受 R·C 个处理单元"
        "限制（受计算能力限制）。点和屋顶之间的差距，是填充、排空阵列以及映射时闲置的 PE 所损失的时间。"),
    "plot.descent": _e("Loss around the current weights", "当前权重附近的损失"),
    "plot.descent_step": _e("Loss around the weights of step {step}", "第 {step} 步权重附近的损失"),
    "plot.direction": _e("direction {i}", "方向 {i}"),
    "plot.direction_share": _e("direction {i} ({share} of movement)", "方向 {i}（占移动的 {share}）"),
    "plot.path": _e("path of the weights", "权重的路径"),
    "plot.current_weights": _e("current weights", "当前权重"),
    "plot.recompute": _e("Recompute surface", "重新计算损失面"),
    "plot.surface_note": _e("Plane through the current weights along the two directions in which the last {n} "
                            "weight vectors moved most; each pixel is a forward pass on the chip.{moved}",
                            "这个平面经过当前权重，沿着最近 {n} 个权重向量移动最多的两个方向；每个像素都是芯片上的一次"
                            "前向传播。{moved}"),
    "plot.not_moved": _e(" The weights have not moved yet, so the directions are random.",
                         "权重还没有移动，所以这两个方向是随机的。"),
    "plot.weight_layer": _e("layer", "层"),
    "plot.layer_option": _e("layer {layer} ({rows}×{cols})", "第 {layer} 层（{rows}×{cols}）"),
    "plot.row_input": _e("i (input unit)", "i（输入单元）"),
    "plot.col_input": _e("j (output unit)", "j（输出单元）"),
    "plot.update_heading": _e("### One weight's update, written out", "### 一个权重的更新，逐项写出"),
    "plot.where": _e("layer {layer}, W[{i}, {j}]", "第 {layer} 层，W[{i}, {j}]"),
    "plot.no_update": _e("no training step yet. Press play or step once to see how gradient descent changes "
                         "this weight.", "还没有训练步骤。按“训练”或“单步”，看梯度下降怎样改变这个权重。"),
    "plot.update_head": _e("{where}</b>, step {step}, optimizer <b>{optimizer}",
                           "{where}</b>，第 {step} 步，优化器 <b>{optimizer}"),
    "plot.sgd_words": _e("The weight moves against its gradient, by the learning rate α = {lr} times the gradient. "
                         "The chip stored {stored}.",
                         "权重沿梯度的反方向移动，移动量是学习率 α = {lr} 乘以梯度。芯片存下的值是 {stored}。"),
    "plot.row_lr": _e("α (learning rate)", "α（学习率）"),
    "plot.row_new": _e("W<sub>new</sub> (after the step)", "W<sub>new</sub>（更新后）"),
    "plot.row_step": _e("step W<sub>new</sub> − W<sub>old</sub>", "步长 W<sub>new</sub> − W<sub>old</sub>"),
    "plot.row_plain": _e("plain-SGD step −α·∂L/∂W, for comparison", "普通 SGD 的步长 −α·∂L/∂W（作对比）"),
    "plot.momentum_words": _e("Momentum keeps a velocity v: each step is μ times the previous step plus −α times "
                              "the new gradient, so steps grow while the gradient keeps its sign and shrink when "
                              "it flips.",
                              "动量法保存一个速度 v：每一步是上一步的 μ 倍加上 −α 乘以新的梯度，所以梯度符号不变时步长"
                              "变大，符号翻转时步长变小。"),
    "plot.adam_words": _e("Adam divides a running average of the gradient (m̂) by the running root-mean-square of "
                          "the gradient (√v̂), so every weight moves by roughly α per step whatever its gradient's "
                          "size (β₁ = 0.9, β₂ = 0.999, ε = 10⁻⁸; m̂, v̂ correct the averages' start at zero).",
                          "Adam 用梯度的滑动平均 (m̂) 除以梯度的滑动均方根 (√v̂)，所以不管梯度多大，每个权重每步"
                          "大约移动 α（β₁ = 0.9，β₂ = 0.999，ε = 10⁻⁸；m̂、v̂ 修正了平均值从零开始的偏差）。"),
    "plot.ratio": _e(" The step is {ratio}× the plain-SGD step.", "这一步是普通 SGD 步长的 {ratio} 倍。"),
    "plot.zero_gradient": _e("This weight's gradient is exactly 0: its input was 0 in the whole mini-batch (a "
                             "blank pixel of the digits, or a ReLU unit that is off). Pick another i or j.",
                             "这个权重的梯度正好是 0：它的输入在整个小批量中都是 0（手写数字图像中的空白像素，或一个"
                             "没有激活的 ReLU 单元）。请换一个 i 或 j。"),
    "plot.boundary": _e("Decision boundary", "决策边界"),
    "plot.boundary_title": _e("Decision boundary on {name}, step {step}{acc}", "{name} 上的决策边界，第 {step} 步{acc}"),
    "plot.boundary_acc": _e(" — test accuracy {acc}", " —— 测试准确率 {acc}"),
    "plot.feature": _e("feature x{sub}", "特征 x{sub}"),
    "plot.train_filled": _e("train (filled)", "训练（实心）"),
    "plot.test_outlined": _e("test (outlined)", "测试（空心）"),
    "plot.boundary_line": _e("P = 0.5 (the boundary)", "P = 0.5（边界）"),
    "plot.p_class1": _e("P(class 1)", "P(类别 1)"),
    "plot.boundary_note": _e("Decision boundary needs a 2-D dataset; pick circle, xor, gauss, spiral or moons.",
                             "决策边界需要二维数据集；请选择 circle、xor、gauss、spiral 或 moons。"),
    "plot.boundary_more_inputs": _e(" (The current dataset, {name}, has more than two inputs.)",
                                    "（当前数据集 {name} 的输入多于两个。）"),
}

_FIELDS = string.Formatter()


def placeholders(text: str) -> set[str]:
    """The {names} a string formats."""
    return {name for _, name, _, _ in _FIELDS.parse(text) if name}


def check_lang(lang: str) -> str:
    if lang not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, got {lang!r}")
    return lang


def t(key: str, lang: str = DEFAULT_LANGUAGE, /, **values) -> str:
    """The string `key` in `lang` (English if the language is unknown), formatted with `values`."""
    entry = STRINGS[key]
    text = entry.get(lang) or entry[DEFAULT_LANGUAGE]
    return text.format(**values) if values else text


def texts(prefix: str, lang: str) -> dict[str, str]:
    """{key without `prefix`: string} of every key that starts with `prefix` (unformatted)."""
    return {k[len(prefix):]: t(k, lang) for k in STRINGS if k.startswith(prefix)}


def join(items, lang: str) -> str:
    return t("list_sep", lang).join(str(i) for i in items)


class Msg(str):
    """A translated string that remembers how it was made, so it can be shown in another language.

    Values may be Msgs themselves, or lists of Msgs (joined with the language's separator).
    """

    key: str
    values: dict

    def __new__(cls, key: str, lang: str = DEFAULT_LANGUAGE, /, **values):
        shown = {k: _render(v, lang) for k, v in values.items()}
        obj = super().__new__(cls, t(key, lang, **shown))
        obj.key, obj.values, obj.lang = key, values, lang
        return obj

    def relabel(self, lang: str) -> "Msg":
        return self if lang == self.lang else Msg(self.key, lang, **self.values)

    def __reduce__(self):
        return (_rebuild, (self.key, self.lang, self.values))


def _rebuild(key, lang, values):
    return Msg(key, lang, **values)


def _render(value, lang: str):
    if isinstance(value, Msg):
        return value.relabel(lang)
    if isinstance(value, (list, tuple)):
        return join([_render(v, lang) for v in value], lang)
    return value


def relabel(text, lang: str):
    """`text` in `lang` if it is a Msg; any other string as it is."""
    return text.relabel(lang) if isinstance(text, Msg) else text


# ----- the reasons chipviz.settings.convert gives, in the other language -----
_REASONS = (
    (re.compile(r"^must be one of (?P<allowed>.*)$"), "reason.one_of"),
    (re.compile(r"^must be true or false$"), "reason.bool"),
    (re.compile(r"^must be a whole number from (?P<low>\S+) to (?P<high>\S+)$"), "reason.whole"),
    (re.compile(r"^must be a number from (?P<low>\S+) to (?P<high>\S+)$"), "reason.number"),
    (re.compile(r"^is too long$"), "reason.too_long"),
    (re.compile(r"^cannot be set from a link$"), "reason.not_settable"),
)


def reason(text: str, lang: str = DEFAULT_LANGUAGE):
    """A URL-value error (chipviz.settings.convert's message) as a Msg; unknown wording stays as it is."""
    for pattern, key in _REASONS:
        match = pattern.match(str(text))
        if match:
            return Msg(key, lang, **match.groupdict())
    return str(text)


_DIVERGED = re.compile(r"^Training diverged at step (?P<step>\d+): (?P<what>.*) \(learning rate (?P<lr>\S+) is "
                       r"probably too high\)\. The weights of step (?P<kept>\d+) were kept\.$")
_WHAT = ((re.compile(r"^the loss became (?P<value>\S+)$"), "dash.what.loss"),
         (re.compile(r"^a weight became NaN or infinite$"), "dash.what.weight"),
         (re.compile(r"^a gradient became NaN or infinite$"), "dash.what.gradient"))


def diverged(detail: str, lang: str = DEFAULT_LANGUAGE):
    """The trainer's divergence message (chipviz.nn.trainer) in `lang`: a Msg, or a translated lead-in
    before the original words when they are not the usual ones."""
    match = _DIVERGED.match(detail)
    if match:
        what = match["what"]
        for pattern, key in _WHAT:
            m = pattern.match(what)
            if m:
                what = Msg(key, lang, **m.groupdict())
                break
        return Msg("dash.diverged_detail", lang, step=match["step"], what=what, lr=match["lr"], kept=match["kept"])
    return Msg("dash.diverged_lead", lang, detail=detail) if lang != DEFAULT_LANGUAGE else detail


_URL_NOTICES = ((re.compile(r"^Unknown setting “(?P<key>.*)” in the link was ignored\.$", re.S), "dash.unknown_setting"),
                (re.compile(r"^(?P<key>[^=]*)=(?P<value>.*) was ignored: (?P<reason>.*); the default was kept\.$", re.S),
                 "dash.bad_value"))


def url_notice(text: str, lang: str = DEFAULT_LANGUAGE):
    """A notice of chipviz.settings.parse_query as a Msg (so it can be shown in either language);
    unknown wording stays as it is."""
    for pattern, key in _URL_NOTICES:
        match = pattern.match(str(text))
        if match:
            values = match.groupdict()
            if "reason" in values:
                values["reason"] = reason(values["reason"], lang)
            return Msg(key, lang, **values)
    return text


__all__ = ["LANGUAGES", "DEFAULT_LANGUAGE", "STRINGS", "t", "texts", "join", "Msg", "relabel", "placeholders",
           "check_lang", "reason", "diverged", "url_notice"]
