import pytest

from edgefleet import ConfigError
from edgefleet.compress.passes import get_pass, pass_names
from edgefleet.compress.recipe import Recipe, recipe_from_flags


def test_every_registered_pass_imports_and_documents_its_params():
    names = pass_names()
    assert {"prune", "lowrank", "distill", "quantize", "prune_heads", "distill_hidden"} <= set(names)
    for name in names:
        cls = get_pass(name)
        assert cls.__doc__ and cls.params
        for p in cls.params:
            assert p.doc, f"{name}.{p.name} has no description"
        cls()  # defaults are valid


def test_builtin_recipes_load():
    for name in ("default", "small", "transformer"):
        recipe = Recipe.from_toml(name)
        assert recipe.passes[-1].name == "quantize"


def test_flags_build_the_same_recipe_as_toml(tmp_path):
    toml = tmp_path / "r.toml"
    toml.write_text('name = "flags"\n[[passes]]\nname = "prune"\namount = 0.5\nstructured = true\n'
                    '[[passes]]\nname = "quantize"\nmethod = "mse"\nweight_bits = 7\nqat = false\n')
    assert Recipe.from_toml(toml).to_dict() == recipe_from_flags(prune=0.5).to_dict()


@pytest.mark.parametrize("text, message", [
    ('[[passes]]\nname = "squeeze"\n', r"passes\[0\]: unknown pass 'squeeze'; known passes: distill, distill_hidden, lowrank"),
    ('[[passes]]\nname = "quantize"\nmethod = 3\n', r"passes\[0\]: pass quantize.method: expected str, got int"),
    ('[[passes]]\nname = "quantize"\nweight_bits = 4\n', r"weight_bits: 4 is not one of 7, 8"),
    ('[[passes]]\nname = "quantize"\nbogus = 1\n', r"unknown parameter\(s\) bogus"),
    ('[[passes]]\nmethod = "mse"\n', r"passes\[0\]: missing key 'name'"),
    ('name = "x"\n', r"missing 'passes'"),
    ('passes = [\n', r"invalid TOML"),
    ('[[passes]]\nname = "quantize"\nqat = "yes"\n', r"qat: expected bool, got str"),
])
def test_bad_recipes_are_refused_with_the_place(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        Recipe.from_toml(path)


def test_missing_recipe_file():
    with pytest.raises(ConfigError, match="no such file or built-in recipe"):
        Recipe.from_toml("/nonexistent/recipe.toml")
