"""At image build time: Label Studio's own migrations into an empty SQLite database, kept in the
image; ls_init.py copies it for a first start on a new /data (stock settings, no user, no secret)."""
import os
import pathlib
import shutil
import sys
import tempfile

import label_studio

TEMPLATE = pathlib.Path(sys.prefix) / "share" / "pachstudio" / "label_studio.sqlite3"


def main() -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        os.environ["LABEL_STUDIO_BASE_DATA_DIR"] = data_dir
        os.environ["DJANGO_SETTINGS_MODULE"] = "label_studio.core.settings.label_studio"
        sys.path.insert(0, str(pathlib.Path(label_studio.__file__).parent))
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connections

        call_command("migrate", "--no-color", verbosity=0)
        connections.close_all()
        TEMPLATE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pathlib.Path(data_dir) / "label_studio.sqlite3", TEMPLATE)
    print(f"pachstudio: pre-migrated Label Studio database at {TEMPLATE}")


if __name__ == "__main__":
    main()
