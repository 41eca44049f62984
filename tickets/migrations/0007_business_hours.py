import django.contrib.postgres.fields
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("tickets", "0006_canned_replies"),
    ]

    operations = [
        migrations.CreateModel(
            name='BusinessHours',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('enabled', models.BooleanField(default=False, help_text='Off: always open (agents are offered conversations at any time, SLAs count every minute).', verbose_name='business hours apply')),
                ('time_zone', models.CharField(default='Asia/Shanghai', help_text='An IANA name such as Asia/Shanghai.', max_length=64, verbose_name='time zone')),
                ('monday', models.CharField(blank=True, default='09:00-18:00', help_text='Open intervals like 09:00-12:00, 13:30-18:00; empty: closed all day.', max_length=200, verbose_name='Monday')),
                ('tuesday', models.CharField(blank=True, default='09:00-18:00', help_text='Open intervals like 09:00-12:00, 13:30-18:00; empty: closed all day.', max_length=200, verbose_name='Tuesday')),
                ('wednesday', models.CharField(blank=True, default='09:00-18:00', help_text='Open intervals like 09:00-12:00, 13:30-18:00; empty: closed all day.', max_length=200, verbose_name='Wednesday')),
                ('thursday', models.CharField(blank=True, default='09:00-18:00', help_text='Open intervals like 09:00-12:00, 13:30-18:00; empty: closed all day.', max_length=200, verbose_name='Thursday')),
                ('friday', models.CharField(blank=True, default='09:00-18:00', help_text='Open intervals like 09:00-12:00, 13:30-18:00; empty: closed all day.', max_length=200, verbose_name='Friday')),
                ('saturday', models.CharField(blank=True, default='', help_text='Open intervals like 09:00-12:00, 13:30-18:00; empty: closed all day.', max_length=200, verbose_name='Saturday')),
                ('sunday', models.CharField(blank=True, default='', help_text='Open intervals like 09:00-12:00, 13:30-18:00; empty: closed all day.', max_length=200, verbose_name='Sunday')),
                ('holidays', django.contrib.postgres.fields.ArrayField(base_field=models.DateField(), blank=True, default=list, help_text='Dates closed all day.', size=None, verbose_name='holidays')),
                ('extra_workdays', django.contrib.postgres.fields.ArrayField(base_field=models.DateField(), blank=True, default=list, help_text='Dates worked although the week says closed (调休), with the hours of the weekday below.', size=None, verbose_name='extra working days')),
                ('extra_workday_hours_of', models.PositiveSmallIntegerField(choices=[(0, 'Monday'), (1, 'Tuesday'), (2, 'Wednesday'), (3, 'Thursday'), (4, 'Friday'), (5, 'Saturday'), (6, 'Sunday')], default=0, verbose_name='extra working days have the hours of')),
                ('off_hours_message', models.CharField(default='您好，现在是非工作时间（工作时间：周一至周五 9:00-18:00），您的问题已记录，客服上班后会第一时间回复您。', help_text='Sent instead of the waiting message when a customer is handed to humans outside business hours.', max_length=500, verbose_name='message outside business hours')),
            ],
            options={
                'verbose_name': 'business hours',
                'verbose_name_plural': 'business hours',
            },
        ),
    ]
