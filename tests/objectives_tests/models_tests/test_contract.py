"""The loss / head / encoder contract, checked at study validation and when a trial is built."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from losstune.objectives.compat import IncompatibleConfigError, check_model_contract, model_input
from losstune.objectives.config import TrialConfig
from losstune.objectives.models import MODELS, get_model_class
from losstune.objectives.models.outputs import OUTPUT_FIELDS
from losstune.objectives.training import ConfigurationError, check_compatibility
from losstune.studies.spec import StudyFileError, load_study_file, parse_study
from tests.conftest import tiny_study


def test_every_head_declares_known_outputs_and_inputs() -> None:
    for name, cls in MODELS.items():
        assert cls.provides <= set(OUTPUT_FIELDS), name
        assert cls.input in ("embeddings", "token_states", "token_ids"), name


@pytest.mark.parametrize(
    ("losses", "head", "encoder", "fine_tune", "message"),
    [
        (["latent_guidance"], "dual_textcnn", "glove", False,
         r"loss 'latent_guidance' needs model output\(s\) \['teacher_latents', "
         r"'teacher_logits'\]; model head 'dual_textcnn' provides .*latentg_student"),
        (["ce", "latent_guidance"], "linear", "hashing", False,
         r"loss 'latent_guidance' needs .*'latents'.*model head 'linear'"),
        (["ce"], "textcnn", "hashing", False,
         r"model head 'textcnn' reads 'token_ids', but encoder 'hashing' provides "
         r"\['embeddings', 'token_states'\]; encoders that provide it: \['glove', 'minilm'\]"),
        (["ce"], "linear", "glove", True,
         r"encoder.fine_tune is true but encoder 'glove' cannot be fine-tuned"),
        (["ce"], "textcnn", "minilm", True,
         r"fine_tune is true but model head 'textcnn' reads 'token_ids'"),
        (["latent_guidance"], "latentg_student", "minilm", True,
         r"fine_tune is true but model head 'latentg_student' has a teacher"),
    ],
)
def test_incompatible_parts_are_named(
    losses: list[str], head: str, encoder: str, fine_tune: bool, message: str
) -> None:
    with pytest.raises(IncompatibleConfigError, match=message):
        check_model_contract(losses, head, encoder, fine_tune=fine_tune)


@pytest.mark.parametrize(
    ("losses", "head", "encoder", "fine_tune"),
    [
        (["latent_guidance", "ce"], "latentg_student", "glove", False),
        (["ce", "focal"], "textcnn", "glove", False),
        (["ce"], "birnn", "minilm", False),
        (["ce", "bce"], "linear", "minilm", True),
        (["ce"], "dual_textcnn", "minilm", True),
    ],
)
def test_compatible_parts_pass(
    losses: list[str], head: str, encoder: str, fine_tune: bool
) -> None:
    check_model_contract(losses, head, encoder, fine_tune=fine_tune)


def test_trainer_prepares_token_ids_for_fine_tuning() -> None:
    assert model_input(get_model_class("linear"), fine_tune=True) == "token_ids"
    assert model_input(get_model_class("linear"), fine_tune=False) == "embeddings"
    assert model_input(get_model_class("textcnn"), fine_tune=False) == "token_ids"


def _study(**overrides: Any) -> dict[str, Any]:
    return tiny_study(**overrides)


def test_study_with_a_loss_the_head_cannot_feed_fails_at_validation(tmp_path: Path) -> None:
    study = _study(model={"head": "dual_textcnn"}, encoder={"name": "glove"},
                   loss={"choices": ["ce", "latent_guidance"]})
    with pytest.raises(StudyFileError, match="latent_guidance.*dual_textcnn") as info:
        parse_study(study, source="latentg_bad.yaml")
    assert "model.head" in str(info.value) and "latentg_bad.yaml" in str(info.value)
    # an auxiliary term is checked too
    study = _study(encoder={"name": "glove"}, loss={"choices": ["ce"],
                                                     "auxiliary": ["latent_guidance"]})
    with pytest.raises(StudyFileError, match="latent_guidance.*'linear'"):
        parse_study(study)
    # from a file, before any storage exists
    path = tmp_path / "bad.yaml"
    db = tmp_path / "never.db"
    path.write_text(
        "name: bad\ndata: {name: synthetic}\nencoder: {name: hashing}\n"
        "model: {head: textcnn}\nloss: {choices: [ce]}\n"
        f"storage: sqlite:///{db}\n"
    )
    with pytest.raises(StudyFileError, match="textcnn.*'token_ids'.*'hashing'"):
        load_study_file(path)
    assert not db.exists()


def test_valid_model_studies_validate() -> None:
    parse_study(_study(model={"head": "latentg_student"}, encoder={"name": "glove"},
                       loss={"choices": ["latent_guidance", "ce"]}))
    parse_study(_study(model={"head": "textcnn"}, encoder={"name": "glove"}))
    spec = parse_study(_study(encoder={"name": "minilm", "fine_tune": True}))
    assert "train.encoder_lr" in spec.compile_space().names()
    assert "train.encoder_lr" not in parse_study(_study()).compile_space().names()


def test_single_label_loss_on_multilabel_dataset_fails_at_validation() -> None:
    with pytest.raises(StudyFileError, match=r"loss\(es\) \['ce'\] need single-label data"):
        parse_study(_study(data={"name": "20ng_hierarchical"}, loss={"choices": ["ce", "bce"]}))


def test_trial_build_raises_configuration_error() -> None:
    config = TrialConfig(data={"name": "synthetic"}, encoder={"name": "hashing"},
                         model={"head": "textcnn"}, loss={"terms": [{"name": "ce"}]})
    with pytest.raises(ConfigurationError, match="textcnn.*hashing"):
        check_compatibility(config, multilabel=False)
