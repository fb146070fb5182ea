"""The Pachyderm tile as a user meets it: real Chromium, real Label Studio serving the patched
bundle, the Pachyderm storage app, the mount server and the embedded PFS server."""
import uuid

import pytest
from pachyderm_sdk.api import pfs
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from .storage_page import StoragePage

pytestmark = pytest.mark.browser


@pytest.fixture(scope="session")
def wizard(chromium, wizard_labelstudio, screenshots):
    wizard = StoragePage(chromium, wizard_labelstudio, screenshots)
    wizard.login()
    return wizard


@pytest.fixture(autouse=True)
def last_screen(request, wizard):
    """The screen each test ended on, to look at when one fails."""
    yield
    wizard.shot(f"{request.node.name}-end")


@pytest.fixture(scope="session")
def legacy_form(chromium, legacy_form_labelstudio, screenshots):
    wizard = StoragePage(chromium, legacy_form_labelstudio, screenshots, host="localhost")
    wizard.login()
    return wizard


@pytest.fixture
def project(wizard_labelstudio):
    return wizard_labelstudio.create_project(title=f"wizard {uuid.uuid4().hex[:6]}")["id"]


@pytest.fixture
def repo(shared_pfs_server):
    """A repo with files at two prefixes, made with the ordinary Pachyderm SDK."""
    name = f"wizard-{uuid.uuid4().hex[:8]}"
    client = shared_pfs_server.client()
    client.pfs.create_repo(repo=pfs.Repo.from_uri(f"default/{name}"))
    with client.pfs.commit(branch=pfs.Branch.from_uri(f"default/{name}@master")) as commit:
        for path in ("images/cat.txt", "images/dog.txt", "other/readme.txt"):
            commit.put_file_from_bytes(path=path, data=path.encode())
    return name


def test_source_wizard_offers_a_pachyderm_tile_with_its_connection_fields(wizard, project):
    wizard.open(project, target=False)

    assert wizard.providers()[:5] == ["s3", "gcs", "azure", "redis", "pachyderm"]
    assert "localfiles" in wizard.providers()
    tile = wizard.driver.find_element(By.CSS_SELECTOR, "[data-testid=storage-provider-pachyderm]")
    assert tile.is_displayed() and tile.text == "Pachyderm"
    assert tile.find_element(By.CSS_SELECTOR, "svg[aria-label=Pachyderm]")
    wizard.shot("source-1-tiles")

    wizard.choose_pachyderm()

    fields = wizard.inputs()
    wizard.shot("source-2-connection")
    assert list(fields) == ["title", "pach_project", "repo", "branch", "commit", "predictions_from"]
    assert fields["pach_project"].get_attribute("placeholder") == "default"
    assert fields["pach_project"].get_attribute("value") == ""
    assert fields["branch"].get_attribute("value") == "master"
    assert fields["commit"].get_attribute("value") == ""
    assert fields["predictions_from"].get_attribute("value") == ""  # optional: no predictions unless named


def test_source_wizard_asks_for_the_repository_before_calling_the_server(wizard, project):
    wizard.open(project, target=False)
    wizard.choose_pachyderm()
    wizard.type("title", "no repo")

    wizard.button("Test Connection").click()

    wizard.see("Repository is required")
    assert wizard.driver.find_element(By.XPATH, "//button[normalize-space()='Next']").get_attribute("disabled")
    wizard.shot("source-3-repo-required")


def test_source_wizard_checks_previews_and_syncs_a_pachyderm_repo(wizard, project, repo):
    ls = wizard.ls
    wizard.open(project, target=False)
    wizard.choose_pachyderm()
    wizard.type("title", "Wizard source")
    wizard.type("repo", repo)

    wizard.button("Test Connection").click()
    wizard.button("Connection Verified")
    wizard.button("Next").click()

    wizard.see("Configure Import Settings & Preview Data")
    assert {"prefix", "regex_filter"} <= set(wizard.inputs())
    wizard.type("prefix", "images")
    wizard.select("use_blob_urls", "Files")
    wizard.button("Load Preview").click()
    wizard.see("images/cat.txt")
    wizard.see("images/dog.txt")
    assert "readme.txt" not in wizard.driver.page_source
    wizard.shot("source-4-preview")

    wizard.button("Next").click()
    wizard.shot("source-5-review")
    wizard.button("Save & Sync").click()
    wizard.modal_closed()
    wizard.see("Wizard source")
    wizard.shot("source-6-card")

    [storage] = ls.api("GET", f"/api/storages/pachyderm?project={project}", expect=200).json()
    assert (storage["repo"], storage["branch"], storage["prefix"], storage["use_blob_urls"]) == \
        (repo, "master", "images", True)
    assert ls.wait_storage(storage["id"])["status"] == "completed"
    assert sorted(t["data"]["pachyderm_path"] for t in ls.tasks(project)) == ["images/cat.txt", "images/dog.txt"]


def test_target_wizard_offers_pachyderm_with_a_file_format_and_saves_it(wizard, project, repo):
    ls = wizard.ls
    wizard.open(project, target=True)
    assert "pachyderm" in wizard.providers()

    wizard.choose_pachyderm()

    fields = wizard.inputs()
    assert list(fields) == ["title", "pach_project", "repo", "branch", "prefix", "export_formats_text", "splits"]
    assert wizard.driver.find_element(By.CSS_SELECTOR, "button[data-name=layout]").get_attribute("data-value") == "id"
    trigger = wizard.driver.find_element(By.CSS_SELECTOR, "button[data-name=file_format]")
    assert trigger.get_attribute("data-value") == "annotation"
    assert "One file per annotation" in trigger.text
    wizard.shot("target-1-connection")
    wizard.select("file_format", "task")
    assert "One file per task" in wizard.driver.find_element(By.CSS_SELECTOR, "button[data-name=file_format]").text
    wizard.type("title", "Wizard target")
    wizard.type("repo", repo)
    wizard.type("branch", "labels")
    wizard.type("prefix", "annotations")
    wizard.select("layout", "source_path")
    wizard.type("export_formats_text", "json_min, csv")

    wizard.button("Test Connection").click()
    wizard.button("Connection Verified")
    wizard.shot("target-2-verified")
    wizard.button("Save").click()
    wizard.modal_closed()
    wizard.see("Wizard target")
    wizard.shot("target-3-card")

    [storage] = ls.api("GET", f"/api/storages/export/pachyderm?project={project}", expect=200).json()
    assert (storage["repo"], storage["branch"], storage["prefix"], storage["file_format"]) == \
        (repo, "labels", "annotations", "task")
    assert (storage["layout"], storage["export_formats"]) == ("source_path", ["JSON_MIN", "CSV"])


def test_editing_a_pachyderm_target_shows_its_settings_and_saves_changes(wizard, project, repo):
    ls = wizard.ls
    created = ls.create_target(project, title="Edit me", repo=repo, branch="edits", prefix="before",
                               file_format="task", export_formats=["JSON_MIN", "CSV"])
    wizard.driver.get(f"{wizard.url}/projects/{project}/settings/storage")
    wizard.see("Edit me")

    wizard.click("button[aria-label='Storage options']")
    wizard.driver.find_element(By.XPATH, "//*[normalize-space(text())='Edit']").click()
    # the edit form fills in and slides open: wait until every field is shown, not just the first
    wizard.wait.until(lambda d: d.find_element(By.NAME, "repo").get_attribute("value") == repo
                      and {"title", "repo", "branch", "prefix"} <= set(wizard.inputs()))

    fields = wizard.inputs()
    assert {name: fields[name].get_attribute("value") for name in ("title", "repo", "branch", "prefix")} == \
        {"title": "Edit me", "repo": repo, "branch": "edits", "prefix": "before"}
    assert wizard.driver.find_element(By.CSS_SELECTOR, "button[data-name=file_format]").get_attribute(
        "data-value") == "task"
    wizard.shot("target-4-edit")
    assert fields["export_formats_text"].get_attribute("value") == "JSON_MIN, CSV"
    wizard.type("prefix", "after")
    wizard.select("file_format", "annotation")
    wizard.type("export_formats_text", "json")
    wizard.button("Save").click()
    wizard.modal_closed()

    storage = ls.storage(created["id"], target=True)
    assert (storage["prefix"], storage["file_format"], storage["branch"]) == ("after", "annotation", "edits")
    assert storage["export_formats"] == ["JSON"]


def test_older_form_offers_pachyderm_with_the_backends_fields_and_creates_a_source(legacy_form, repo):
    """With the wizard off, Label Studio shows its older form: types and fields from the backend."""
    ls = legacy_form.ls
    project = ls.create_project(title=f"legacy {uuid.uuid4().hex[:6]}")["id"]
    legacy_form.open(project, target=False, ready="select[name=storage_type]")
    assert not legacy_form.driver.find_elements(By.CSS_SELECTOR, "[data-testid^=storage-provider-]")

    legacy_form.select("storage_type", "pachyderm")
    legacy_form.wait.until(EC.visibility_of_element_located((By.NAME, "repo")))

    assert {"title", "pach_project", "repo", "branch", "commit", "prefix", "regex_filter"} <= \
        set(legacy_form.inputs())
    legacy_form.type("title", "Legacy source")
    legacy_form.type("repo", repo)
    legacy_form.type("prefix", "other")
    legacy_form.select("use_blob_urls", "true")
    legacy_form.button("Check Connection").click()
    legacy_form.see("Successfully connected!")
    legacy_form.shot("legacy-1-connected")
    legacy_form.button("Add Storage").click()
    legacy_form.see("Legacy source")
    legacy_form.shot("legacy-2-card")

    [storage] = ls.api("GET", f"/api/storages/pachyderm?project={project}", expect=200).json()
    assert (storage["repo"], storage["prefix"], storage["use_blob_urls"]) == (repo, "other", True)
