"""Report pieces that need no model: wall times, seeds, escaping of generated text, the HTML."""

from meow.pipeline.spec import load_spec
from meow.report.stage import _escape, benchmark_entries, render_html, seeds


def test_wall_time_of_a_method_is_the_stages_that_made_the_unlearned_model():
    spec = load_spec("stages: [prepare, invert, memo, select, unlearn, evaluate]")
    manifests = {
        name: {"seconds": seconds}
        for name, seconds in {"prepare": 100.0, "invert": 10.0, "memo": 20.0, "select": 0.5, "unlearn": 60.0}.items()
    }
    manifests["prepare"]["summary"] = {"target": {"train_seconds": 40.0}, "oracle": {"train_seconds": 30.0}}
    evaluation = {
        "target": {"forget_quality": 0.01},
        "oracle": {"forget_quality": 1.0},
        "methods": {"meow": {"forget_quality": 0.5}},
    }
    entries = benchmark_entries(evaluation, manifests, spec)
    assert entries["methods"]["meow"] == {"forget_quality": 0.5, "wall_s": 90.5}
    assert entries["target"]["wall_s"] == 40.0 and entries["oracle"]["wall_s"] == 30.0


def test_seeds_of_the_stages_that_run():
    spec = load_spec("stages: [select, unlearn]\nseed: 7\nselect: {seed: 3}\n")
    found = seeds(spec)
    assert found["spec"] == 7 and found["select.seed"] == 3 and found["unlearn.train.seed"] == 42
    assert not any(key.startswith("invert") for key in found)


def test_generated_text_is_shown_literally():
    text = "a *b* _c_ <script>x</script> [l](u) | `d` \\ e\nf"
    html = render_html(f"- {_escape(text)}", title="t")
    assert "<li>a *b* _c_ &lt;script&gt;x&lt;/script&gt; [l](u) | `d` \\ e f</li>" in html
    assert "<script>" not in html
