"""Chinese and mixed Chinese/English requirements: segmentation, stop words, identifiers kept whole,
cross-language reach through the glossary and through pairs learned from a real repository's history."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from indexer.build import index
from indexer.store import Store
from indexer.text import glossary, words
from inference.base import create
from inference.bilingual import Bilingual

ROOT = Path(__file__).resolve().parents[1]
SLOW_QUERY = "OpenCL 后端的卷积算子在 Mali GPU 上太慢，需要优化"

CODE = {
    "opencl/README.md": "# OpenCL backend\n\nRuns layers on Mali and Adreno GPUs through OpenCL kernels.\n",
    "opencl/conv_opencl.cpp": "// Convolution layer on OpenCL.\nclass ConvSimdGroupShader {\n  // tiled conv kernel\n"
                              "  void forward();\n};\n",
    "opencl/pooling_opencl.cpp": "// Max and average pooling on OpenCL.\nclass PoolingOpenCL { void forward(); };\n",
    "opencl/opencl_runtime.cpp": "// Loads the OpenCL library and builds programs.\nclass OpenCLRuntime {};\n",
    "vulkan/README.md": "# Vulkan backend\n\nCompute pipelines and SPIR-V shaders for desktop and Android GPUs.\n",
    "vulkan/pipeline_cache.cpp": "// Caches compiled compute pipelines.\nclass PipelineCache { void compile_shader(); };\n",
    "vulkan/texture_upload.cpp": "// Uploads image textures to device memory.\nclass TextureUploader {};\n",
    "vulkan/command_buffer.cpp": "// Records and submits command buffers.\nclass CommandBuffer {};\n",
    "memory/README.md": "# Memory\n\nPool allocator for tensors: blocks are reused, leaks are reported at exit.\n",
    "memory/pool_allocator.cpp": "// Pool allocator with free lists.\nclass PoolAllocator { void* fastMalloc(); };\n",
    "memory/leak_check.cpp": "// Reports blocks never freed.\nvoid report_leaks();\n",
    "memory/aligned_alloc.cpp": "// Aligned allocation helpers.\nvoid* aligned_malloc();\n",
    "converter/README.md": "# Converter\n\nConverts ONNX and Caffe models, with int8 quantization tables.\n",
    "converter/onnx2model.py": '"""Convert an ONNX model."""\n\ndef convert_onnx(path):\n    """Read the ONNX graph."""\n',
    "converter/quantize.py": '"""Int8 quantization of weights."""\n\ndef quantize_int8(model):\n    """Quantize weights."""\n',
    "converter/caffe2model.py": '"""Convert a Caffe model."""\n\ndef convert_caffe(path):\n    """Read prototxt."""\n',
}

# (file touched, commit text): English, Chinese and mixed, as a Chinese-led project writes them.
HISTORY = [
    ("opencl/conv_opencl.cpp", "opencl: faster tiled conv kernel on Adreno"),
    ("opencl/conv_opencl.cpp", "修复 OpenCL 卷积在 Mali 上的精度问题"),
    ("opencl/pooling_opencl.cpp", "opencl pooling 支持 ceil mode"),
    ("opencl/opencl_runtime.cpp", "OpenCL 运行时加载程序失败"),
    ("vulkan/texture_upload.cpp", "vulkan: 纹理 texture 上传太慢"),
    ("vulkan/texture_upload.cpp", "修复 纹理 texture 格式错误"),
    ("vulkan/texture_upload.cpp", "纹理 texture 对齐问题"),
    ("vulkan/pipeline_cache.cpp", "vulkan 着色器编译失败"),
    ("vulkan/pipeline_cache.cpp", "vulkan: cache compiled compute pipelines"),
    ("vulkan/command_buffer.cpp", "vulkan command buffer 提交顺序"),
    ("memory/pool_allocator.cpp", "memory: pool allocator reuses freed blocks"),
    ("memory/leak_check.cpp", "修复内存池泄漏"),
    ("memory/aligned_alloc.cpp", "内存对齐分配在 arm 上崩溃"),
    ("converter/quantize.py", "converter: onnx int8 quantization"),
    ("converter/quantize.py", "转换器支持量化模型"),
    ("converter/onnx2model.py", "onnx 模型转换 reshape 报错"),
    ("converter/caffe2model.py", "caffe 模型转换的 prototxt 解析"),
]


def indexed(tmp_path_factory, first: str, code: dict[str, str], history: list[tuple[str, str]], month: int):
    """A real git repository: `code` committed as `first`, then one commit per (file, text) of `history`, a day
    apart; indexed."""
    from conftest import GitRepo

    repo = GitRepo(tmp_path_factory.mktemp("zh") / "repo")
    repo.commit(first, code)
    for i, (path, msg) in enumerate(history):
        repo.commit(msg, {path: (repo.root / path).read_text(encoding="utf-8") + f"// change {i}\n"},
                    date=f"2024-{month:02d}-{i + 1:02d}T12:00:00+00:00")
    return index(repo.root, Store(tmp_path_factory.mktemp("store") / "g.db")).graph


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    g = indexed(tmp_path_factory, "initial import", CODE, HISTORY, 2)
    assert set(g.leaf_ids()) == {"opencl", "vulkan", "memory", "converter"}
    return g


@pytest.fixture(scope="module")
def matchers(graph):
    return {n: create(n, graph) for n in ("lexical", "history", "hybrid")}


# --- segmentation ---------------------------------------------------------------------------------------
def test_chinese_is_cut_into_words_without_single_character_noise():
    ws = words(SLOW_QUERY)
    assert {"后端", "卷积", "算子", "opencl", "mali", "gpu"} <= set(ws), ws
    noise = [w for w in ws if not w.isascii() and len(w) == 1]
    assert not noise, noise
    assert not {"的", "在", "需要", "上", "后", "子", "化", "算"} & set(ws)


def test_stop_words_dropped_and_glossary_single_characters_kept():
    ws = words("我们需要修复一个问题，这个锁太慢了")
    assert {"修复", "问题"} <= set(ws)  # content words stay, generic or not
    assert "锁" in ws  # a glossary term (lock) though one character
    assert not {"我们", "需要", "一个", "这个", "了", "太"} & set(ws), ws
    ws = words("由于缓存作为索引，至少两个查询之间不再返回结果")
    assert {"缓存", "索引", "查询", "返回", "结果"} <= set(ws)
    assert not {"由于", "作为", "至少", "两个", "之间", "不再"} & set(ws), ws


def test_when_it_reports_is_not_a_newspaper():
    """"运行时报错" is 运行 / 时 / 报错 (when run, it reports an error), not jieba's 时报 (a newspaper), which lost 报错
    and was named as a word the repository cannot read in eight Chinese issue titles of six repositories."""
    assert words("运行时报错") == ["运行", "报错"]
    assert "时报" not in words('升级时报 "process has already locked"')


def test_a_long_word_gives_its_common_first_and_last_parts_only():
    """Search mode gave every two characters inside a long word that jieba's dictionary holds at all: 达式 of 表达式
    (xxl-job's "Cron表达式解析错误" read 达式), 据库 of 数据库, 时任 ("then serving") of 定时任务."""
    assert words("Cron表达式解析错误") == ["cron", "表达", "表达式", "解析", "错误"]
    assert words("数据库") == ["数据", "数据库"]
    assert words("定时任务不执行") == ["定时", "任务", "定时任务", "执行"]
    assert "序列" in words("序列化出错")


def test_identifiers_inside_chinese_split_like_in_english():
    english = words("ConvSimdGroupShader is slow")
    mixed = words("修复ConvSimdGroupShader的内存泄漏")
    assert [w for w in english if w != "slow"] == [w for w in mixed if w.isascii()]
    assert "convsimdgroupshader" in mixed and "内存" in mixed and "泄漏" in mixed
    assert {"process_refund", "process", "refund"} <= set(words("process_refund 在退款时崩溃"))


def test_english_text_does_not_load_the_segmenter():
    code = ("import sys; from indexer.text import words; words('fix the LRU cache of the OpenCL backend'); "
            "assert 'jieba' not in sys.modules; words('卷积'); assert 'jieba' in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


def test_segmenter_dictionary_cached_under_modmatch_home(tmp_path):
    """The CLI, as an operator runs it, keeps jieba's dictionary cache under $MODMATCH_HOME/cache."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "backend").mkdir()
    (repo / "backend" / "README.md").write_text("# 后端\n\n卷积算子的后端实现。\n", encoding="utf-8")
    git = ["git", "-C", str(repo), "-c", "user.name=d", "-c", "user.email=d@e"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "后端: 卷积算子"], check=True)
    home = tmp_path / "home"
    env = {**os.environ, "MODMATCH_HOME": str(home)}
    subprocess.run([sys.executable, "-m", "bot.cli", "index", str(repo)], cwd=ROOT, env=env, check=True, timeout=300,
                   capture_output=True)
    assert any(p.name.startswith("jieba") for p in (home / "cache").iterdir())


def test_glossary_terms_are_segmenter_words():
    gl = glossary()
    assert len(gl) >= 300
    assert gl["卷积"][0] == "conv" and gl["后端"] == ("backend",) and gl["熔断器"][0] == "breaker"
    assert gl["微调"][0] == "finetune" and gl["多模态"][0] == "multimodal"
    for term in ("后端", "算子", "卷积", "线程池", "内存泄漏", "熔断器", "限流", "服务发现", "多模态", "断点续训"):
        assert term in words(f"这是{term}的测试"), term


# --- cross-language reach ------------------------------------------------------------------------------
def test_learned_dictionary_holds_a_pair_the_history_implies(graph):
    lex = Bilingual.from_history(graph.history)
    assert "纹理" not in glossary()  # only the history can teach this one
    learned = dict(lex.learned.get("纹理", []))
    assert "texture" in learned, lex.learned
    assert ("texture", learned["texture"]) in lex.expand(["纹理"])


@pytest.mark.parametrize("name", ["lexical", "history", "hybrid"])
@pytest.mark.parametrize("query,expected", [
    (SLOW_QUERY, "opencl"),  # mixed
    ("卷积算子的内核需要优化", "opencl"),  # Chinese only: 算子 and 内核 reach English code through the glossary
    ("内存泄漏导致崩溃", "memory"),  # Chinese only
    ("模型量化以后转换失败", "converter"),  # Chinese only
    ("纹理上传变慢", "vulkan"),  # Chinese only, a word the history taught
    ("texture upload is slow on Android", "vulkan"),  # English
    ("the pool allocator leaks freed blocks", "memory"),  # English
    ("ConvSimdGroupShader 结果不对", "opencl"),  # an identifier inside Chinese
])
def test_chinese_english_and_mixed_requirements_reach_their_module(matchers, name, query, expected):
    res = matchers[name].match(query, k=3)
    assert res[0].module == expected, [(m.module, round(m.score, 3), m.evidence[:1]) for m in res]


def test_lexical_evidence_has_no_single_characters(matchers):
    top = matchers["lexical"].match(SLOW_QUERY, k=1)[0]
    shown = top.evidence[0].removeprefix("words: ").split(", ")
    assert {"opencl", "卷积", "layer"} <= set(shown), shown  # layer: the English of 算子, which no text holds
    assert not [w for w in shown if not w.isascii() and len(w) == 1], shown


@pytest.mark.parametrize("name", ["lexical", "hybrid"])
@pytest.mark.parametrize("query,expected", [("命令", "vulkan"), ("流水线", "vulkan"), ("内核", "opencl"),
                                            ("检查", "memory")])
def test_a_chinese_word_reaches_a_module_through_the_glossary_alone(matchers, name, query, expected):
    # no text of the repository holds 命令 (command), 流水线 (pipeline), 内核 (kernel) or 检查 (check, the general
    # development vocabulary of stop 44): only the glossary links them to the English code (`leak_check`; with
    # nothing matched, ties would go to `converter`, first by name)
    top = matchers[name].match(query, k=1)[0]
    assert top.module == expected, top


def test_chinese_words_known_in_english_count_as_covered(matchers):
    from inference.evidence import Coverage

    cov = Coverage(matchers["lexical"].docs)
    assert cov("命令") > 0.9 and cov("卷积算子的内核需要优化") > 0.5  # the repository's words, asked in Chinese
    assert cov("发票金额不对") < 0.1  # invoices: not this repository's subject in any language


def test_a_repository_writes_chinese_when_its_history_does(graph):
    """Whether a repository writes Chinese is read off its change texts, not its documents: an English project's
    interface translations (jellyfin's zh-CN strings) put Chinese in its documents, yet a Chinese word no glossary
    holds says nothing against a Chinese question there, as in a repository with no Chinese at all."""
    from inference.bilingual import writes_chinese
    from inference.evidence import Coverage

    assert writes_chinese(graph.history) is True  # this repository's commit texts are partly Chinese
    assert writes_chinese([]) is None
    docs = [words("HTTP client retries a request with backoff"), words("按钮 button 主题")]  # a translated label
    title = "按钮在深色主题下错位"
    assert Coverage(docs).chinese and Coverage(docs).subject(title, claim=True) < 1.0  # read off the documents
    english = Coverage(docs, chinese=False)  # as the hybrid builds it for a team that writes English
    assert english.subject(title, claim=True) == 1.0 and english.unread(title)
    assert Coverage(docs, chinese=True).unread(title) == []


# A repository whose team writes every change text in Chinese, about code whose names say nothing of it in English.
PANEL_CODE = {
    "recorder/ring.go": "package recorder\n\n// Ring keeps the last lines.\ntype Ring struct{ lines []string }\n",
    "recorder/rotate.go": "package recorder\n\nfunc (r *Ring) Cut(n int) {}\n",
    "transfer/chunk.go": "package transfer\n\n// Chunk is one part of a body.\ntype Chunk struct{ data []byte }\n",
    "transfer/resume.go": "package transfer\n\nfunc Resume(c *Chunk) error { return nil }\n",
}
PANEL_HISTORY = [
    ("recorder/ring.go", "修复日志丢失的问题"),
    ("recorder/rotate.go", "日志切割失败"),
    ("recorder/ring.go", "日志显示不全"),
    ("recorder/rotate.go", "优化日志轮转"),
    ("transfer/chunk.go", "修复上传文件超时的问题"),
    ("transfer/resume.go", "大文件上传失败"),
    ("transfer/chunk.go", "上传文件夹报错"),
    ("transfer/resume.go", "文件上传支持断点续传"),
]


@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    return indexed(tmp_path_factory, "初始化", PANEL_CODE, PANEL_HISTORY, 3)


@pytest.mark.parametrize("query,expected", [("Uploading files times out", "transfer"),
                                            ("Logs are lost after rotation", "recorder")])
def test_an_english_requirement_reaches_a_repository_that_writes_chinese(panel, query, expected):
    """The training rows of a Chinese change text carry its English equivalents (日志 → log), but an English
    question reached them only word for word ("logs" is not "log"): it is read with the Chinese words its English
    words stand for (`HistoryMatcher.query_text`), and its words count as known where those are (`Coverage`)."""
    from inference.hybrid import served_coverage

    hist = create("history", panel)
    assert hist.writes_chinese
    assert "上传" in hist.query_text("Uploading files times out") and "文件" in hist.query_text("Uploading files")
    assert hist.query_text("上传文件超时") == "上传文件超时"  # a Chinese question is read as written
    res = hist.match(query, k=2)
    assert res[0].module == expected and res[0].score > 1.5 * res[1].score, res
    hist.writes_chinese = False  # as an English question was read before
    hist._last_words = None
    before = hist.match(query, k=2)
    assert before[0].score < res[0].score, (before, res)

    parts = {"lexical": create("lexical", panel), "history": create("history", panel)}
    cov = served_coverage(parts, panel)
    plain = served_coverage({"lexical": parts["lexical"]}, panel)
    assert cov(query, claim=True) > plain(query, claim=True) + 0.2, (cov(query, True), plain(query, True))


# An English-writing team whose integration tests describe their steps in Chinese (alibaba/nacos): the only
# Chinese the index holds is in the tests, about what the code does in English.
REGISTRY_CODE = {
    "registry/service_registry.py": '"""Registers service instances and checks their health."""\n\n'
                                    'class ServiceRegistry:\n    def register_service(self, name):\n        """Register a '
                                    'service."""\n\n    def check_health(self, name):\n        """Check a service; a '
                                    'failed check marks it down."""\n',
    "registry/heartbeat.py": '"""Heartbeats of registered services."""\n\ndef check_heartbeat(service):\n'
                             '    """Fail the service after missed beats."""\n',
    "itest/test_registry.py": '"""Integration tests."""\n\ndef test_register_twice():\n    """用例：重复注册服务，检查服务列表。"""\n'
                              '\n\ndef test_down():\n    """用例：服务检查失败后下线。"""\n',
    "itest/test_config.py": '"""Integration tests of the config."""\n\ndef test_publish():\n    """用例：发布配置。"""\n',
    "config/publisher.py": '"""Publishes configuration to listeners."""\n\ndef publish_config(key, value):\n'
                           '    """Publish a configuration value."""\n',
    "config/listener.py": '"""Listeners notified of configuration changes."""\n\nclass ConfigListener:\n    pass\n',
}
REGISTRY_HISTORY = [
    ("registry/service_registry.py", "Fix service health check on restart"),
    ("registry/heartbeat.py", "Heartbeat: fail service after three missed beats"),
    ("registry/service_registry.py", "Register service with metadata"),
    ("config/publisher.py", "Publish config atomically"),
    ("config/listener.py", "Notify listeners once per change"),
    ("itest/test_registry.py", "Add integration test for double registration"),
    ("config/publisher.py", "Config: reject empty keys"),
    ("registry/heartbeat.py", "Tune heartbeat interval"),
]


def test_a_chinese_question_to_an_english_team_reads_its_known_chinese_words_in_english(tmp_path_factory):
    """A Chinese word the index holds matched as itself, where only the integration tests' descriptions hold it:
    "服务检查失败" (a service's check fails) went to `itest`. Where the team writes English, every Chinese word of a
    question with English equivalents is read as them (service, check, fail), so the code answers; a Chinese word
    with none still matches as itself."""
    g = indexed(tmp_path_factory, "initial import", REGISTRY_CODE, REGISTRY_HISTORY, 4)
    assert {"registry", "itest", "config"} <= set(g.leaf_ids())
    lex = create("lexical", g)
    assert lex.translate_known
    query = "服务检查失败"
    assert lex.match(query, k=1)[0].module == "registry"
    toks = dict(lex.weighted_tokens(query + " 下线"))
    assert {"service", "check"} <= set(toks) and "服务" not in toks and toks.get("下线") == 1.0  # no English for 下线
    lex.translate_known = False  # as it read before: the literal words, in the tests alone
    assert lex.match(query, k=1)[0].module == "itest"
