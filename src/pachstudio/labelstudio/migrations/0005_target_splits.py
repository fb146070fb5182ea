from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('io_storages_pachyderm', '0004_source_predictions_from'),
    ]

    operations = [
        migrations.AddField(
            model_name='pachydermexportstorage',
            name='splits',
            field=models.TextField(blank=True, default='', help_text='Frozen splits, e.g. "train 80, val 10, test 10, seed 7": each task\'s split from a hash of its source path and the seed, in every label file, the manifest and per split in the exports', verbose_name='splits'),
        ),
    ]
