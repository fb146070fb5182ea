from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('io_storages_pachyderm', '0003_target_restore_pending'),
    ]

    operations = [
        migrations.AddField(
            model_name='pachydermimportstorage',
            name='predictions_from',
            field=models.CharField(blank=True, default='', help_text='[project/]repo@branch whose <path>.json files hold predictions for the tasks from <path>', max_length=256, verbose_name='predictions from'),
        ),
        migrations.AddField(
            model_name='pachydermimportstorage',
            name='predictions_commit',
            field=models.CharField(blank=True, help_text='Commit of predictions_from whose predictions the last Sync attached', max_length=64, null=True, verbose_name='predictions commit'),
        ),
        migrations.AddField(
            model_name='pachydermimportstorage',
            name='predictions_version',
            field=models.TextField(blank=True, help_text="The model version this Source last made the project's; a person who picks another keeps theirs", null=True, verbose_name='predictions version'),
        ),
    ]
