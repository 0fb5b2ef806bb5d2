"""bin.export --format hf: a Wav2Vec2ForCTC folder transformers loads, equal to our model."""

import numpy as np
import pytest
import torch
from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC

from hourglass_w2v2.bin import export as export_cli
from hourglass_w2v2.checkpoint import load_ctc_model
from hourglass_w2v2.convert.references import from_huggingface
from hourglass_w2v2.lang.tokenizer import Tokenizer


@pytest.mark.parametrize(
    "mode, normalize, pre_ln", [("group_norm", False, False), ("layer_norm", True, True)]
)
def test_hf_folder_equals_our_model_and_round_trips(
    tmp_path, toy_lang, helpers, mode, normalize, pre_ln
):
    exp = helpers.make_exp(
        tmp_path / "exp", toy_lang, "tiny", mode, normalize, layer_norm_first=pre_ln
    )
    out = tmp_path / "hf"
    export_cli.main(["--exp-dir", str(exp), "--format", "hf", "--out", str(out)])
    tok = Tokenizer(toy_lang)
    ours, _ = load_ctc_model(exp / "checkpoints" / "ckpt-1.pt", tok, torch.device("cpu"))
    hf = Wav2Vec2ForCTC.from_pretrained(str(out)).eval()
    assert hf.config.do_stable_layer_norm is pre_ln and hf.config.pad_token_id == 0
    extractor = Wav2Vec2FeatureExtractor.from_pretrained(str(out))
    assert extractor.do_normalize is normalize
    for samples in helpers.utterances(4, seed=2):
        x = torch.from_numpy(samples)[None]
        if normalize:
            x = torch.nn.functional.layer_norm(x, x.shape[-1:])
        with torch.no_grad():
            ref = ours(x).logits.numpy()
            got = hf(x).logits.numpy()
        np.testing.assert_allclose(got, ref, atol=1e-4)
    # HF CTC tokenizer decodes our unit ids to our text
    hf_tok = Wav2Vec2CTCTokenizer.from_pretrained(str(out))
    ids = tok.encode("THE CAT SAT")
    assert hf_tok.decode(ids).split() == ["THE", "CAT", "SAT"]
    # back through the existing HF import: the very same weights
    back = from_huggingface(hf)
    for key, value in ours.state_dict().items():
        torch.testing.assert_close(back.state_dict()[key], value, rtol=0, atol=0)


def test_hourglass_is_refused_with_the_reason(tmp_path, toy_lang, helpers):
    exp = helpers.make_exp(tmp_path / "exp", toy_lang, "tiny-hourglass", "group_norm", False)
    with pytest.raises(SystemExit) as e:
        export_cli.main(["--exp-dir", str(exp), "--format", "hf", "--out", str(tmp_path / "hf")])
    assert "hourglass model" in str(e.value) and "--format onnx" in str(e.value)
    assert not (tmp_path / "hf").exists()
