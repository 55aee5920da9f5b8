"""Secret references: parsing, and the real Secret Manager client (REST) against a loopback fake."""

import logging

import pytest

from ARR_COC.Training import train
from ARR_COC.Training.secret_store import SecretError, SecretRef, load_secrets, make_client, parse_refs
from ARR_COC.Training.fake_secret_manager import FakeSecretManager, serving

VALUE = "wandb-value-0123456789abcdef"  # stands for a real key: must never be printed


@pytest.mark.parametrize("text, expected", [
    ("", []),
    (" , ", []),
    ("WANDB_API_KEY=projects/p/secrets/wandb",
     [SecretRef("WANDB_API_KEY", "projects/p/secrets/wandb/versions/latest")]),
    ("HF_TOKEN=projects/p/secrets/hf/versions/3, WANDB_API_KEY = projects/p/secrets/w ",
     [SecretRef("HF_TOKEN", "projects/p/secrets/hf/versions/3"),
      SecretRef("WANDB_API_KEY", "projects/p/secrets/w/versions/latest")]),
])
def test_parse_refs(text, expected):
    assert parse_refs(text) == expected


@pytest.mark.parametrize("text, message", [
    ("WANDB_API_KEY=" + VALUE, "WANDB_API_KEY must reference a secret as projects/PROJECT/secrets/NAME"),
    ("HF_TOKEN=projects/p/secrets", "HF_TOKEN must reference a secret"),
    ("HF_TOKEN=projects/p/secrets/s/versions/", "HF_TOKEN must reference a secret"),
    ("projects/p/secrets/s", "ARR_SECRET_REFS entry 1 is not ENV=projects/PROJECT/secrets/NAME"),
    ("A=projects/p/secrets/a,9X=projects/p/secrets/x", "ARR_SECRET_REFS entry 2 is not ENV="),
    ("A=projects/p/secrets/a,A=projects/p/secrets/b", "A is given more than once"),
])
def test_bad_refs_name_the_variable_never_the_text(text, message):
    with pytest.raises(SecretError) as error:
        parse_refs(text)
    assert message in str(error.value)
    assert VALUE not in str(error.value)


@pytest.fixture
def fake():
    return FakeSecretManager(secrets={"projects/p/secrets/wandb": [b"old", VALUE.encode() + b"\n"],
                                      "projects/p/secrets/hf": [b"hf-value-xyz"]},
                             denied={"projects/p/secrets/locked"}, corrupt={"projects/p/secrets/bad"})


def test_resolves_into_the_environment_and_logs_only_names(fake, capfd, caplog):
    caplog.set_level(logging.DEBUG)  # whatever the client libraries log, at any level
    with serving(fake) as url:
        environ = {"ARR_SECRET_REFS": "WANDB_API_KEY=projects/p/secrets/wandb,HF_TOKEN=projects/p/secrets/hf/versions/1",
                   "ARR_SECRETMANAGER_ENDPOINT": url}
        assert load_secrets(environ) == ["WANDB_API_KEY", "HF_TOKEN"]
    assert environ["WANDB_API_KEY"] == VALUE and environ["HF_TOKEN"] == "hf-value-xyz"
    assert fake.requests == ["/v1/projects/p/secrets/wandb/versions/latest:access",
                             "/v1/projects/p/secrets/hf/versions/1:access"]
    captured = capfd.readouterr()
    for text in (captured.out, captured.err, caplog.text):
        assert VALUE not in text and "hf-value-xyz" not in text


@pytest.mark.parametrize("reference, message", [
    ("projects/p/secrets/nope", "WANDB_API_KEY: projects/p/secrets/nope/versions/latest does not exist"),
    ("projects/p/secrets/wandb/versions/7", "WANDB_API_KEY: projects/p/secrets/wandb/versions/7 does not exist"),
    ("projects/p/secrets/locked", "WANDB_API_KEY: no access to projects/p/secrets/locked; grant the job's "
                                  "service account roles/secretmanager.secretAccessor"),
])
def test_unresolvable_reference_is_a_clear_error(fake, reference, message):
    with serving(fake) as url:
        environ = {"ARR_SECRET_REFS": f"HF_TOKEN=projects/p/secrets/hf,WANDB_API_KEY={reference}",
                   "ARR_SECRETMANAGER_ENDPOINT": url}
        with pytest.raises(SecretError) as error:
            load_secrets(environ)
    assert message in str(error.value)
    assert "HF_TOKEN" not in environ, "nothing is set unless every reference resolves"


def test_corrupted_payload_is_refused(fake):
    fake.secrets["projects/p/secrets/bad"] = [VALUE.encode()]
    with serving(fake) as url:
        with pytest.raises(SecretError, match="HF_TOKEN: the payload of projects/p/secrets/bad/versions/latest "
                                              "failed its CRC32C check") as error:
            load_secrets({"ARR_SECRET_REFS": "HF_TOKEN=projects/p/secrets/bad", "ARR_SECRETMANAGER_ENDPOINT": url})
    assert VALUE not in str(error.value)


def test_plain_http_endpoint_off_loopback_is_refused():
    with pytest.raises(SecretError, match="plain http is only allowed to loopback"):
        make_client("http://secrets.example.com")


def test_trainer_stops_before_training_on_a_bad_reference(fake, capsys, monkeypatch):
    with serving(fake) as url:
        monkeypatch.setenv("ARR_SECRET_REFS", "WANDB_API_KEY=projects/p/secrets/nope")
        monkeypatch.setenv("ARR_SECRETMANAGER_ENDPOINT", url)
        assert train.main(["--max-steps", "1"]) == 2
    assert "secret error: WANDB_API_KEY: projects/p/secrets/nope/versions/latest does not exist" in capsys.readouterr().err
