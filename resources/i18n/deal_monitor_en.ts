<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="en" sourcelanguage="en">
    <context>
        <name>AppController</name>
        <message numerus="yes">
            <source>%n deal(s) were listed before you cancelled; run it again to continue.</source>
            <translation>
                <numerusform>%n deal was listed before you cancelled; run it again to continue.</numerusform>
                <numerusform>%n deals were listed before you cancelled; run it again to continue.</numerusform>
            </translation>
        </message>
        <message numerus="yes">
            <source>%n deal(s) read from the portal and brought up to date.</source>
            <translation>
                <numerusform>%n deal read from the portal and brought up to date.</numerusform>
                <numerusform>%n deals read from the portal and brought up to date.</numerusform>
            </translation>
        </message>
        <message numerus="yes">
            <source>%n deal(s) could not be synced. See the Events tab.</source>
            <translation>
                <numerusform>%n deal could not be synced. See the Events tab.</numerusform>
                <numerusform>%n deals could not be synced. See the Events tab.</numerusform>
            </translation>
        </message>
        <message numerus="yes">
            <source>%n deal(s) reached the production database.</source>
            <translation>
                <numerusform>%n deal reached the production database.</numerusform>
                <numerusform>%n deals reached the production database.</numerusform>
            </translation>
        </message>
    </context>
    <context>
        <name>DealDetail</name>
        <message numerus="yes">
            <source>%n deal(s) selected. Ctrl+R reads them all again.</source>
            <translation>
                <numerusform>%n deal selected. Ctrl+R reads it again.</numerusform>
                <numerusform>%n deals selected. Ctrl+R reads them all again.</numerusform>
            </translation>
        </message>
    </context>
    <context>
        <name>DoctorDialog</name>
        <message numerus="yes">
            <source>%n problem(s) found.</source>
            <translation>
                <numerusform>%n problem found.</numerusform>
                <numerusform>%n problems found.</numerusform>
            </translation>
        </message>
    </context>
    <context>
        <name>DryRunDialog</name>
        <message numerus="yes">
            <source>Reading %n deal(s) from the portal…</source>
            <translation>
                <numerusform>Reading %n deal from the portal…</numerusform>
                <numerusform>Reading %n deals from the portal…</numerusform>
            </translation>
        </message>
        <message numerus="yes">
            <source>The table would refuse %n of these rows: see below.</source>
            <translation>
                <numerusform>The table would refuse %n of these rows: see below.</numerusform>
                <numerusform>The table would refuse %n of these rows: see below.</numerusform>
            </translation>
        </message>
    </context>
    <context>
        <name>MainWindow</name>
        <message numerus="yes">
            <source>%1 of %n deal(s)</source>
            <translation>
                <numerusform>%1 of %n deal</numerusform>
                <numerusform>%1 of %n deals</numerusform>
            </translation>
        </message>
        <message numerus="yes">
            <source>%n deal(s)</source>
            <translation>
                <numerusform>%n deal</numerusform>
                <numerusform>%n deals</numerusform>
            </translation>
        </message>
        <message numerus="yes">
            <source>%1 of %n event(s)</source>
            <translation>
                <numerusform>%1 of %n event</numerusform>
                <numerusform>%1 of %n events</numerusform>
            </translation>
        </message>
        <message numerus="yes">
            <source>(%n failed)</source>
            <translation>
                <numerusform>(%n failed)</numerusform>
                <numerusform>(%n failed)</numerusform>
            </translation>
        </message>
        <message numerus="yes">
            <source>%n deal(s) will be read from the portal again.</source>
            <translation>
                <numerusform>%n deal will be read from the portal again.</numerusform>
                <numerusform>%n deals will be read from the portal again.</numerusform>
            </translation>
        </message>
        <message numerus="yes">
            <source>%n failed event(s) queued again.</source>
            <translation>
                <numerusform>%n failed event queued again.</numerusform>
                <numerusform>%n failed events queued again.</numerusform>
            </translation>
        </message>
        <message numerus="yes">
            <source>%n failed</source>
            <translation>
                <numerusform>%n failed</numerusform>
                <numerusform>%n failed</numerusform>
            </translation>
        </message>
    </context>
    <context>
        <name>MappingPage</name>
        <message numerus="yes">
            <source>This mapping cannot be written (%n problem(s)):</source>
            <translation>
                <numerusform>This mapping cannot be written (%n problem):</numerusform>
                <numerusform>This mapping cannot be written (%n problems):</numerusform>
            </translation>
        </message>
        <message numerus="yes">
            <source>The mapping fits the table; %n warning(s).</source>
            <translation>
                <numerusform>The mapping fits the table; %n warning.</numerusform>
                <numerusform>The mapping fits the table; %n warnings.</numerusform>
            </translation>
        </message>
    </context>
    <context>
        <name>StageFilterDialog</name>
        <message numerus="yes">
            <source>%n deal(s) skipped so far now pass the filter.</source>
            <translation>
                <numerusform>%n deal skipped so far now passes the filter.</numerusform>
                <numerusform>%n deals skipped so far now pass the filter.</numerusform>
            </translation>
        </message>
        <message numerus="yes">
            <source>%n deal(s) will be read from the portal and written to production.</source>
            <translation>
                <numerusform>%n deal will be read from the portal and written to production.</numerusform>
                <numerusform>%n deals will be read from the portal and written to production.</numerusform>
            </translation>
        </message>
    </context>
    <context>
        <name>TrayIcon</name>
        <message numerus="yes">
            <source>Processing paused: %n event(s) waiting</source>
            <translation>
                <numerusform>Processing paused: %n event waiting</numerusform>
                <numerusform>Processing paused: %n events waiting</numerusform>
            </translation>
        </message>
        <message numerus="yes">
            <source>Syncing: %n event(s) waiting</source>
            <translation>
                <numerusform>Syncing: %n event waiting</numerusform>
                <numerusform>Syncing: %n events waiting</numerusform>
            </translation>
        </message>
        <message numerus="yes">
            <source>%n event(s) failed</source>
            <translation>
                <numerusform>%n event failed</numerusform>
                <numerusform>%n events failed</numerusform>
            </translation>
        </message>
    </context>
</TS>