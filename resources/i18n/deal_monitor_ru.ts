<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="ru" sourcelanguage="en">
    <context>
        <name>AppController</name>
        <message>
            <source>Could not save the settings file: %1</source>
            <translation>Не удалось сохранить файл настроек: %1</translation>
        </message>
        <message>
            <source>The system keyring did not accept the secrets (%1); they are kept until the app closes and are not written to disk.</source>
            <translation>Системное хранилище паролей не приняло секреты (%1); они хранятся до закрытия программы и не записываются на диск.</translation>
        </message>
        <message>
            <source>Another Deal Monitor (a service, or a window with another settings file) already uses the data folder %1. The data folder was not changed.</source>
            <translation>Папкой данных %1 уже пользуется другой Deal Monitor (служба или окно с другим файлом настроек). Папка данных не изменена.</translation>
        </message>
        <message>
            <source>The data folder cannot be used (%1). The data folder was not changed.</source>
            <translation>Эту папку данных нельзя использовать (%1). Папка данных не изменена.</translation>
        </message>
        <message>
            <source>Deal Monitor could not start</source>
            <translation>Deal Monitor не удалось запустить</translation>
        </message>
        <message>
            <source>Could not read the local database</source>
            <translation>Не удалось прочитать локальную базу</translation>
        </message>
        <message>
            <source>Synchronisation has a problem</source>
            <translation>Проблема с синхронизацией</translation>
        </message>
        <message>
            <source>Deal Monitor noticed something odd</source>
            <translation>Deal Monitor заметил что-то необычное</translation>
        </message>
        <message>
            <source>Not receiving events</source>
            <translation>События не принимаются</translation>
        </message>
        <message>
            <source>The listener stopped.</source>
            <translation>Приёмник событий остановлен.</translation>
        </message>
        <message>
            <source>Resync stopped</source>
            <translation>Перечитывание прервано</translation>
        </message>
        <message>
            <source>Resync cancelled</source>
            <translation>Перечитывание отменено</translation>
        </message>
        <message numerus="yes">
            <source>%n deal(s) were listed before you cancelled; run it again to continue.</source>
            <translation>
                <numerusform>До отмены прочитана %n сделка; запустите снова, чтобы продолжить.</numerusform>
                <numerusform>До отмены прочитаны %n сделки; запустите снова, чтобы продолжить.</numerusform>
                <numerusform>До отмены прочитано %n сделок; запустите снова, чтобы продолжить.</numerusform>
            </translation>
        </message>
        <message>
            <source>Resync finished</source>
            <translation>Перечитывание завершено</translation>
        </message>
        <message numerus="yes">
            <source>%n deal(s) read from the portal and brought up to date.</source>
            <translation>
                <numerusform>Из портала прочитана и обновлена %n сделка.</numerusform>
                <numerusform>Из портала прочитаны и обновлены %n сделки.</numerusform>
                <numerusform>Из портала прочитано и обновлено %n сделок.</numerusform>
            </translation>
        </message>
        <message>
            <source>Deal %1: %2</source>
            <translation>Сделка %1: %2</translation>
        </message>
        <message numerus="yes">
            <source>%n deal(s) could not be synced. See the Events tab.</source>
            <translation>
                <numerusform>Не удалось синхронизировать %n сделку. Подробности — на вкладке «События».</numerusform>
                <numerusform>Не удалось синхронизировать %n сделки. Подробности — на вкладке «События».</numerusform>
                <numerusform>Не удалось синхронизировать %n сделок. Подробности — на вкладке «События».</numerusform>
            </translation>
        </message>
        <message>
            <source>Sync failed</source>
            <translation>Ошибка синхронизации</translation>
        </message>
        <message>
            <source>Deal %1 “%2” is in the production database.</source>
            <translation>Сделка %1 «%2» передана в базу производства.</translation>
        </message>
        <message numerus="yes">
            <source>%n deal(s) reached the production database.</source>
            <translation>
                <numerusform>В базу производства передана %n сделка.</numerusform>
                <numerusform>В базу производства переданы %n сделки.</numerusform>
                <numerusform>В базу производства передано %n сделок.</numerusform>
            </translation>
        </message>
        <message>
            <source>New deal in production</source>
            <translation>Новая сделка в производстве</translation>
        </message>
        <message>
            <source>The action failed</source>
            <translation>Действие не выполнено</translation>
        </message>
    </context>
    <context>
        <name>CrashDialog</name>
        <message>
            <source>Deal Monitor: unexpected error</source>
            <translation>Deal Monitor: непредвиденная ошибка</translation>
        </message>
        <message>
            <source>Something went wrong inside Deal Monitor</source>
            <translation>В работе Deal Monitor произошёл сбой</translation>
        </message>
        <message>
            <source>The app keeps running and no received event is lost: events wait in the local inbox until they are synced. If this happens again, send the details below to your administrator.</source>
            <translation>Программа продолжает работать, и ни одно полученное событие не потеряно: события ждут в локальной очереди, пока не будут синхронизированы. Если сбой повторится, отправьте подробности ниже администратору.</translation>
        </message>
        <message>
            <source>Show details</source>
            <translation>Показать подробности</translation>
        </message>
        <message>
            <source>Hide details</source>
            <translation>Скрыть подробности</translation>
        </message>
        <message>
            <source>Copy details</source>
            <translation>Скопировать подробности</translation>
        </message>
        <message>
            <source>Open the log folder</source>
            <translation>Открыть папку журналов</translation>
        </message>
    </context>
    <context>
        <name>DealDetail</name>
        <message>
            <source>Resync this deal</source>
            <translation>Перечитать сделку</translation>
        </message>
        <message>
            <source>Read the deal from the portal again now (Ctrl+R)</source>
            <translation>Прочитать сделку из портала заново (Ctrl+R)</translation>
        </message>
        <message>
            <source>Dry run</source>
            <translation>Пробный прогон</translation>
        </message>
        <message>
            <source>What a sync would write for this deal now, without writing (Ctrl+D)</source>
            <translation>Что синхронизация записала бы по этой сделке сейчас — без записи (Ctrl+D)</translation>
        </message>
        <message>
            <source>Timeline</source>
            <translation>История</translation>
        </message>
        <message>
            <source>Time</source>
            <translation>Время</translation>
        </message>
        <message>
            <source>Step</source>
            <translation>Шаг</translation>
        </message>
        <message>
            <source>What happened</source>
            <translation>Что произошло</translation>
        </message>
        <message>
            <source>Select a deal to see its timeline.</source>
            <translation>Выберите сделку, чтобы увидеть её историю.</translation>
        </message>
        <message numerus="yes">
            <source>%n deal(s) selected. Ctrl+R reads them all again.</source>
            <translation>
                <numerusform>Выбрана %n сделка. Ctrl+R перечитает её.</numerusform>
                <numerusform>Выбраны %n сделки. Ctrl+R перечитает их все.</numerusform>
                <numerusform>Выбрано %n сделок. Ctrl+R перечитает их все.</numerusform>
            </translation>
        </message>
        <message>
            <source>Deal %1</source>
            <translation>Сделка %1</translation>
        </message>
        <message>
            <source>closes %1</source>
            <translation>закрытие %1</translation>
        </message>
        <message>
            <source>(empty)</source>
            <translation>(пусто)</translation>
        </message>
        <message>
            <source>yes</source>
            <translation>да</translation>
        </message>
        <message>
            <source>no</source>
            <translation>нет</translation>
        </message>
    </context>
    <context>
        <name>DealsModel</name>
        <message>
            <source>When the deal last changed in Bitrix24</source>
            <translation>Когда сделка последний раз менялась в Битрикс24</translation>
        </message>
        <message>
            <source>When Deal Monitor last read the deal and decided about it</source>
            <translation>Когда Deal Monitor последний раз прочитал сделку и принял решение</translation>
        </message>
        <message>
            <source>What the production database holds for the deal</source>
            <translation>Что о сделке записано в базе производства</translation>
        </message>
        <message>
            <source>ID</source>
            <translation>ID</translation>
        </message>
        <message>
            <source>Deal</source>
            <translation>Сделка</translation>
        </message>
        <message>
            <source>Pipeline</source>
            <translation>Воронка</translation>
        </message>
        <message>
            <source>Stage</source>
            <translation>Стадия</translation>
        </message>
        <message>
            <source>Amount</source>
            <translation>Сумма</translation>
        </message>
        <message>
            <source>Close date</source>
            <translation>Закрытие</translation>
        </message>
        <message>
            <source>Changed</source>
            <translation>Изменение</translation>
        </message>
        <message>
            <source>Synced</source>
            <translation>Синхронизация</translation>
        </message>
        <message>
            <source>State</source>
            <translation>Состояние</translation>
        </message>
    </context>
    <context>
        <name>DesktopApp</name>
        <message>
            <source>Deal Monitor</source>
            <translation>Deal Monitor</translation>
        </message>
        <message>
            <source>Deal Monitor is already running on this data folder (as a service, or a window with another settings file):

%1

Stop it first, or use it.</source>
            <translation>Deal Monitor уже работает с этой папкой данных (как служба или окно с другим файлом настроек):

%1

Сначала остановите его или пользуйтесь им.</translation>
        </message>
        <message>
            <source>The settings file has an error and cannot be used:

%1

%2</source>
            <translation>В файле настроек ошибка, его нельзя использовать:

%1

%2</translation>
        </message>
        <message>
            <source>Start with default settings</source>
            <translation>Запустить с настройками по умолчанию</translation>
        </message>
        <message>
            <source>Quit</source>
            <translation>Выйти</translation>
        </message>
        <message>
            <source>No secure keyring</source>
            <translation>Нет защищённого хранилища паролей</translation>
        </message>
        <message>
            <source>The webhook URL and the token are kept only until the app closes (%1).</source>
            <translation>Адрес вебхука и токен хранятся только до закрытия программы (%1).</translation>
        </message>
        <message>
            <source>Settings</source>
            <translation>Настройки</translation>
        </message>
        <message>
            <source>Settings saved.</source>
            <translation>Настройки сохранены.</translation>
        </message>
    </context>
    <context>
        <name>DoctorDialog</name>
        <message>
            <source>Settings are valid ({mode_text}).</source>
            <translation>Настройки в порядке ({mode_text}).</translation>
        </message>
        <message>
            <source>No portal is configured.</source>
            <translation>Портал не настроен.</translation>
        </message>
        <message>
            <source>Enter an inbound webhook URL, or the address, client ID and secret of a local application.</source>
            <translation>Введите адрес входящего вебхука или адрес портала, client ID и секрет локального приложения.</translation>
        </message>
        <message>
            <source>Events reach this computer over plain http:// at {url} (a private address; allowed by portal.allow_private_http).</source>
            <translation>События приходят на этот компьютер по незащищённому http:// на {url} (частный адрес; разрешено настройкой portal.allow_private_http).</translation>
        </message>
        <message>
            <source>Use it only inside a trusted network; anyone on it can read the application token.</source>
            <translation>Используйте это только в доверенной сети: любой в ней может прочитать токен приложения.</translation>
        </message>
        <message>
            <source>The inbound webhook address is set.</source>
            <translation>Адрес входящего вебхука задан.</translation>
        </message>
        <message>
            <source>The application's client secret is missing.</source>
            <translation>Не задан секрет (client secret) приложения.</translation>
        </message>
        <message>
            <source>Enter it in the settings.</source>
            <translation>Введите его в настройках.</translation>
        </message>
        <message>
            <source>The application's client secret is set.</source>
            <translation>Секрет (client secret) приложения задан.</translation>
        </message>
        <message>
            <source>Push mode needs the outgoing webhook's application token.</source>
            <translation>Для приёма событий нужен токен приложения исходящего вебхука.</translation>
        </message>
        <message>
            <source>Copy the token the portal shows for the outgoing webhook into the settings.</source>
            <translation>Скопируйте в настройки токен, который портал показывает для исходящего вебхука.</translation>
        </message>
        <message>
            <source>Signed in to the portal; {storage}.</source>
            <translation>Вход в портал выполнен; {storage}.</translation>
        </message>
        <message>
            <source>Not signed in to the portal ({reason}).</source>
            <translation>Вход в портал не выполнен ({reason}).</translation>
        </message>
        <message>
            <source>Press “Sign in with Bitrix24” and approve the application.</source>
            <translation>Нажмите «Войти через Битрикс24» и разрешите доступ приложению.</translation>
        </message>
        <message>
            <source>The portal answers at {domain} ({seconds} s).</source>
            <translation>Портал отвечает по адресу {domain} ({seconds} с).</translation>
        </message>
        <message>
            <source>The portal does not answer: {error}.</source>
            <translation>Портал не отвечает: {error}.</translation>
        </message>
        <message>
            <source>Check the address and this computer's internet connection.</source>
            <translation>Проверьте адрес и подключение этого компьютера к интернету.</translation>
        </message>
        <message>
            <source>The portal refused the credentials: {error}.</source>
            <translation>Портал отклонил учётные данные: {error}.</translation>
        </message>
        <message>
            <source>Check the webhook address (it changes when the webhook is edited) or sign in again.</source>
            <translation>Проверьте адрес вебхука (он меняется при редактировании вебхука) или войдите снова.</translation>
        </message>
        <message>
            <source>The {who} has no access to CRM (scopes: {scopes}).</source>
            <translation>Нет доступа к CRM ({who}; права: {scopes}).</translation>
        </message>
        <message>
            <source>Edit the webhook or application in the portal and tick the CRM scope.</source>
            <translation>Откройте вебхук или приложение в портале и отметьте право «CRM».</translation>
        </message>
        <message>
            <source>CRM access is granted (scopes: {scopes}).</source>
            <translation>Доступ к CRM есть (права: {scopes}).</translation>
        </message>
        <message>
            <source>Offline events are bound for {events}.</source>
            <translation>Офлайн-события подключены: {events}.</translation>
        </message>
        <message>
            <source>Offline events are not bound for {events}.</source>
            <translation>Офлайн-события не подключены: {events}.</translation>
        </message>
        <message>
            <source>Sign in again as a portal administrator (or run: main.py --config FILE bind --offline).</source>
            <translation>Войдите снова как администратор портала (или выполните: main.py --config ФАЙЛ bind --offline).</translation>
        </message>
        <message>
            <source>Events are bound to {url}.</source>
            <translation>События направлены на {url}.</translation>
        </message>
        <message>
            <source>Events are not bound to {url} for {events}.</source>
            <translation>События {events} не направлены на {url}.</translation>
        </message>
        <message>
            <source>Run: main.py --config FILE bind (the portal must reach that address).</source>
            <translation>Выполните: main.py --config ФАЙЛ bind (портал должен достучаться до этого адреса).</translation>
        </message>
        <message>
            <source>The bound handlers could not be read: {error}.</source>
            <translation>Не удалось прочитать подключённые обработчики: {error}.</translation>
        </message>
        <message>
            <source>Changes waiting in the portal's offline queue: {count}.</source>
            <translation>Изменений в офлайн-очереди портала: {count}.</translation>
        </message>
        <message>
            <source>The offline queue could not be read: {error}.</source>
            <translation>Не удалось прочитать офлайн-очередь: {error}.</translation>
        </message>
        <message>
            <source>event.test was accepted by the portal.</source>
            <translation>Портал принял event.test.</translation>
        </message>
        <message>
            <source>event.test failed: {error}.</source>
            <translation>event.test не прошёл: {error}.</translation>
        </message>
        <message>
            <source>Check that the application is installed and active.</source>
            <translation>Проверьте, что приложение установлено и активно.</translation>
        </message>
        <message>
            <source>The last event came {ago} ago, source: {source}{addr}.</source>
            <translation>Последнее событие пришло {ago} назад, источник: {source}{addr}.</translation>
        </message>
        <message>
            <source>No event has arrived yet.</source>
            <translation>Событий пока не было.</translation>
        </message>
        <message>
            <source>No pushed event has arrived yet.</source>
            <translation>Ни одно событие от портала ещё не пришло.</translation>
        </message>
        <message>
            <source>Check the outgoing webhook's handler address: the portal must reach {url} from the internet (or your LAN for an on-premise portal).</source>
            <translation>Проверьте адрес обработчика исходящего вебхука: портал должен достучаться до {url} из интернета (или из вашей сети для коробочного портала).</translation>
        </message>
        <message>
            <source>The last change poll ran at {at} (every {interval} s).</source>
            <translation>Последний опрос изменений: {at} (каждые {interval} с).</translation>
        </message>
        <message>
            <source>The change poll has not run yet (every {interval} s).</source>
            <translation>Опроса изменений ещё не было (каждые {interval} с).</translation>
        </message>
        <message>
            <source>The first poll follows the start-up reconciliation.</source>
            <translation>Первый опрос идёт после сверки при запуске.</translation>
        </message>
        <message>
            <source>The change poll is off: changes come in only with reconciliation every {minutes} min.</source>
            <translation>Опрос изменений выключен: изменения приходят только со сверкой раз в {minutes} мин.</translation>
        </message>
        <message>
            <source>Set sync.poll_seconds (10 is a good start).</source>
            <translation>Задайте sync.poll_seconds (для начала подойдёт 10).</translation>
        </message>
        <message>
            <source>The target database answers; table {table} can be written.</source>
            <translation>Рабочая база отвечает; в таблицу {table} можно писать.</translation>
        </message>
        <message>
            <source>The target database answers; table {table} does not exist yet and will be created.</source>
            <translation>Рабочая база отвечает; таблицы {table} пока нет, она будет создана.</translation>
        </message>
        <message>
            <source>The target database does not answer: {error}.</source>
            <translation>Рабочая база не отвечает: {error}.</translation>
        </message>
        <message>
            <source>Check the database URL, the server, the user and the password.</source>
            <translation>Проверьте адрес базы, сервер, пользователя и пароль.</translation>
        </message>
        <message>
            <source>Table {table} does not exist in the target database.</source>
            <translation>В рабочей базе нет таблицы {table}.</translation>
        </message>
        <message>
            <source>Create it, or choose the default preset, which creates its own.</source>
            <translation>Создайте её или выберите стандартную схему, которая создаёт свою таблицу.</translation>
        </message>
        <message>
            <source>The mapping does not fit table {table}: {error}.</source>
            <translation>Сопоставление не подходит к таблице {table}: {error}.</translation>
        </message>
        <message>
            <source>Fix the mapping on the Production table page.</source>
            <translation>Исправьте сопоставление на странице «Рабочая таблица».</translation>
        </message>
        <message>
            <source>The target database user cannot write table {table} ({missing}).</source>
            <translation>Пользователь рабочей базы не может писать в таблицу {table} ({missing}).</translation>
        </message>
        <message>
            <source>Grant INSERT and UPDATE on it (CREATE where the table is created).</source>
            <translation>Выдайте права INSERT и UPDATE на неё (и CREATE, если таблица создаётся).</translation>
        </message>
        <message>
            <source>The local state database is fine ({queued} queued, {failed} failed).</source>
            <translation>Локальная база в порядке (в очереди: {queued}, с ошибкой: {failed}).</translation>
        </message>
        <message>
            <source>The local state database does not exist yet (created at the first start).</source>
            <translation>Локальной базы пока нет (она создаётся при первом запуске).</translation>
        </message>
        <message>
            <source>The local state database has a problem: {error}.</source>
            <translation>Проблема с локальной базой: {error}.</translation>
        </message>
        <message>
            <source>Check the data folder's disk space and permissions.</source>
            <translation>Проверьте свободное место и права доступа к папке данных.</translation>
        </message>
        <message>
            <source>The event listener runs at {url}.</source>
            <translation>Приём событий работает на {url}.</translation>
        </message>
        <message>
            <source>Port {port} on {host} is free for the event listener.</source>
            <translation>Порт {port} на {host} свободен для приёма событий.</translation>
        </message>
        <message>
            <source>The event listener cannot use {host}:{port}: {error}.</source>
            <translation>Приём событий не может использовать {host}:{port}: {error}.</translation>
        </message>
        <message>
            <source>Stop the other program on that port or choose another port.</source>
            <translation>Остановите другую программу на этом порту или выберите другой порт.</translation>
        </message>
        <message>
            <source>The event listener is switched off.</source>
            <translation>Приём событий выключен.</translation>
        </message>
        <message>
            <source>pull mode: inbound webhook, changes polled</source>
            <translation>режим опроса: входящий вебхук, изменения запрашиваются</translation>
        </message>
        <message>
            <source>push mode: inbound and outgoing webhook</source>
            <translation>приём событий: входящий и исходящий вебхук</translation>
        </message>
        <message>
            <source>local application</source>
            <translation>локальное приложение</translation>
        </message>
        <message>
            <source>local application with offline events</source>
            <translation>локальное приложение с офлайн-событиями</translation>
        </message>
        <message>
            <source>nothing configured</source>
            <translation>ничего не настроено</translation>
        </message>
        <message>
            <source>tokens stored in the system keyring (%1)</source>
            <translation>токены хранятся в системном хранилище паролей (%1)</translation>
        </message>
        <message>
            <source>tokens stored in %1 (readable by this user only)</source>
            <translation>токены хранятся в файле %1 (его может читать только этот пользователь)</translation>
        </message>
        <message>
            <source>tokens kept in memory for this session only</source>
            <translation>токены хранятся в памяти только до закрытия программы</translation>
        </message>
        <message>
            <source>the webhook</source>
            <translation>вебхук</translation>
        </message>
        <message>
            <source>the application</source>
            <translation>приложение</translation>
        </message>
        <message>
            <source>the folder cannot be written</source>
            <translation>в папку нельзя писать</translation>
        </message>
        <message>
            <source>the file is read-only</source>
            <translation>файл только для чтения</translation>
        </message>
        <message>
            <source>the server is a read-only replica</source>
            <translation>сервер — реплика только для чтения</translation>
        </message>
        <message>
            <source>the server is read-only</source>
            <translation>сервер работает только на чтение</translation>
        </message>
        <message>
            <source>missing privileges: %1</source>
            <translation>не хватает прав: %1</translation>
        </message>
        <message>
            <source>%1 s</source>
            <translation>%1 с</translation>
        </message>
        <message>
            <source>%1 min</source>
            <translation>%1 мин</translation>
        </message>
        <message>
            <source>%1 h</source>
            <translation>%1 ч</translation>
        </message>
        <message>
            <source>the listener's public address</source>
            <translation>публичный адрес приёма событий</translation>
        </message>
        <message>
            <source>Check connection</source>
            <translation>Проверка подключения</translation>
        </message>
        <message>
            <source>Check again</source>
            <translation>Проверить снова</translation>
        </message>
        <message>
            <source>Each line is one thing that must work; a problem says what to do.</source>
            <translation>Каждая строка — то, что должно работать; у проблемы сказано, что делать.</translation>
        </message>
        <message>
            <source>Checking…</source>
            <translation>Проверяю…</translation>
        </message>
        <message numerus="yes">
            <source>%n problem(s) found.</source>
            <translation>
                <numerusform>Найдена %n проблема.</numerusform>
                <numerusform>Найдены %n проблемы.</numerusform>
                <numerusform>Найдено %n проблем.</numerusform>
            </translation>
        </message>
        <message>
            <source>No problem found.</source>
            <translation>Проблем не найдено.</translation>
        </message>
    </context>
    <context>
        <name>DryRun</name>
        <message>
            <source>new row</source>
            <translation>новая строка</translation>
        </message>
        <message>
            <source>update</source>
            <translation>обновление</translation>
        </message>
        <message>
            <source>no change</source>
            <translation>без изменений</translation>
        </message>
        <message>
            <source>kept: the table holds newer data</source>
            <translation>оставлено: в таблице более новые данные</translation>
        </message>
        <message>
            <source>skipped: the stage is filtered out</source>
            <translation>пропуск: стадия исключена фильтром</translation>
        </message>
        <message>
            <source>deleted in the portal: marked deleted</source>
            <translation>удалена на портале: будет помечена удалённой</translation>
        </message>
        <message>
            <source>cannot be read</source>
            <translation>не читается</translation>
        </message>
        <message>
            <source>yes</source>
            <translation>да</translation>
        </message>
        <message>
            <source>no</source>
            <translation>нет</translation>
        </message>
    </context>
    <context>
        <name>DryRunDialog</name>
        <message>
            <source>Dry run — nothing is written</source>
            <translation>Пробный прогон — ничего не записывается</translation>
        </message>
        <message>
            <source>Deal IDs, e.g. 12, 15, 20</source>
            <translation>ID сделок, например 12, 15, 20</translation>
        </message>
        <message>
            <source>Next queued events</source>
            <translation>Следующие события из очереди</translation>
        </message>
        <message>
            <source>The deals of the next %1 events waiting in the queue</source>
            <translation>Сделки следующих %1 событий, ожидающих в очереди</translation>
        </message>
        <message>
            <source>Run</source>
            <translation>Проверить</translation>
        </message>
        <message>
            <source>the mapping as edited (not saved yet)</source>
            <translation>сопоставление в том виде, как оно задано сейчас (ещё не сохранено)</translation>
        </message>
        <message>
            <source>the current settings</source>
            <translation>текущие настройки</translation>
        </message>
        <message>
            <source>Reads the deals from the portal and compares them with the production table, using %1. Nothing is written.</source>
            <translation>Читает сделки с портала и сравнивает их с таблицей производства; используются %1. Ничего не записывается.</translation>
        </message>
        <message>
            <source>Deal</source>
            <translation>Сделка</translation>
        </message>
        <message>
            <source>What the sync would do</source>
            <translation>Что сделала бы синхронизация</translation>
        </message>
        <message>
            <source>Column</source>
            <translation>Столбец</translation>
        </message>
        <message>
            <source>In the table now</source>
            <translation>Сейчас в таблице</translation>
        </message>
        <message>
            <source>Would be written</source>
            <translation>Будет записано</translation>
        </message>
        <message>
            <source>Deals</source>
            <translation>Сделки</translation>
        </message>
        <message>
            <source>Reading the queue…</source>
            <translation>Читаю очередь…</translation>
        </message>
        <message>
            <source>No events are waiting in the queue.</source>
            <translation>В очереди нет ожидающих событий.</translation>
        </message>
        <message>
            <source>Enter one or more deal IDs.</source>
            <translation>Введите один или несколько ID сделок.</translation>
        </message>
        <message numerus="yes">
            <source>Reading %n deal(s) from the portal…</source>
            <translation>
                <numerusform>Читаю %n сделку с портала…</numerusform>
                <numerusform>Читаю %n сделки с портала…</numerusform>
                <numerusform>Читаю %n сделок с портала…</numerusform>
            </translation>
        </message>
        <message numerus="yes">
            <source>The table would refuse %n of these rows: see below.</source>
            <translation>
                <numerusform>Таблица не примет %n из этих строк: подробности ниже.</numerusform>
                <numerusform>Таблица не примет %n из этих строк: подробности ниже.</numerusform>
                <numerusform>Таблица не примет %n из этих строк: подробности ниже.</numerusform>
            </translation>
        </message>
        <message>
            <source>Done. Nothing was written.</source>
            <translation>Готово. Ничего не записано.</translation>
        </message>
        <message>
            <source>%1 — the table would refuse it</source>
            <translation>%1 — таблица её не примет</translation>
        </message>
        <message>
            <source>Deal %1: %2</source>
            <translation>Сделка %1: %2</translation>
        </message>
        <message>
            <source>Deal %1 → table “%2”: %3</source>
            <translation>Сделка %1 → таблица «%2»: %3</translation>
        </message>
        <message>
            <source>Product rows: %1 now → %2: %3</source>
            <translation>Товарные позиции: сейчас %1 → %2: %3</translation>
        </message>
    </context>
    <context>
        <name>EventsModel</name>
        <message>
            <source>Time</source>
            <translation>Время</translation>
        </message>
        <message>
            <source>Event</source>
            <translation>Событие</translation>
        </message>
        <message>
            <source>Deal</source>
            <translation>Сделка</translation>
        </message>
        <message>
            <source>Source</source>
            <translation>Источник</translation>
        </message>
        <message>
            <source>Status</source>
            <translation>Статус</translation>
        </message>
        <message>
            <source>Attempts</source>
            <translation>Попытки</translation>
        </message>
        <message>
            <source>Error</source>
            <translation>Ошибка</translation>
        </message>
        <message>
            <source>Sender</source>
            <translation>Отправитель</translation>
        </message>
    </context>
    <context>
        <name>FirstRunDialog</name>
        <message>
            <source>Welcome to Deal Monitor</source>
            <translation>Добро пожаловать в Deal Monitor</translation>
        </message>
        <message>
            <source>Deal Monitor keeps the production database in step with the deals of Bitrix24: every deal that leaves the start stage is written there within seconds.</source>
            <translation>Deal Monitor поддерживает базу производства в соответствии со сделками Битрикс24: каждая сделка, покинувшая начальную стадию, попадает туда за считаные секунды.</translation>
        </message>
        <message>
            <source>Connect to my Bitrix24 portal</source>
            <translation>Подключить мой портал Битрикс24</translation>
        </message>
        <message>
            <source>Try the demo</source>
            <translation>Попробовать демо</translation>
        </message>
        <message>
            <source>A simulated portal creates and moves deals, so you can see everything working at once. Your data is not touched.</source>
            <translation>Имитация портала создаёт и двигает сделки — вы сразу увидите, как всё работает. Ваши данные не затрагиваются.</translation>
        </message>
        <message>
            <source>Test</source>
            <translation>Проверить</translation>
        </message>
        <message>
            <source>Inbound webhook URL</source>
            <translation>Адрес входящего вебхука</translation>
        </message>
        <message>
            <source>Application token</source>
            <translation>Токен приложения</translation>
        </message>
        <message>
            <source>Listen on port</source>
            <translation>Порт приёма событий</translation>
        </message>
        <message>
            <source>Back</source>
            <translation>Назад</translation>
        </message>
        <message>
            <source>Connect</source>
            <translation>Подключить</translation>
        </message>
        <message>
            <source>In Bitrix24 create an outgoing webhook for the events ONCRMDEALADD, ONCRMDEALUPDATE and ONCRMDEALDELETE with the handler address http://&lt;this computer&gt;:%1/bitrix24/events (or your public URL), and paste its application token above.</source>
            <translation>В Битрикс24 создайте исходящий вебхук на события ONCRMDEALADD, ONCRMDEALUPDATE и ONCRMDEALDELETE с адресом обработчика http://&lt;этот компьютер&gt;:%1/bitrix24/events (или ваш публичный адрес) и вставьте выше его токен приложения.</translation>
        </message>
        <message>
            <source>Enter the inbound webhook URL first.</source>
            <translation>Сначала введите адрес входящего вебхука.</translation>
        </message>
        <message>
            <source>Checking…</source>
            <translation>Проверка…</translation>
        </message>
        <message>
            <source>The portal answered: the webhook works.</source>
            <translation>Портал ответил: вебхук работает.</translation>
        </message>
        <message>
            <source>Enter the inbound webhook URL.</source>
            <translation>Введите адрес входящего вебхука.</translation>
        </message>
        <message>
            <source>Three ways in, whether or not the portal can reach this computer.</source>
            <translation>Три способа — независимо от того, может ли портал достучаться до этого компьютера.</translation>
        </message>
        <message>
            <source>Can the portal reach this computer?</source>
            <translation>Может ли портал достучаться до этого компьютера?</translation>
        </message>
        <message>
            <source>A cloud portal can send events only to a public address (a tunnel, a reverse proxy, or this computer in the same network as an on-premise portal). An office computer behind a router usually has none — then choose one of the first two.</source>
            <translation>Облачный портал может отправлять события только на публичный адрес (туннель, обратный прокси или этот компьютер в одной сети с коробочным порталом). У офисного компьютера за роутером такого адреса обычно нет — тогда выберите один из первых двух вариантов.</translation>
        </message>
        <message>
            <source>No — check the portal for changes (pull mode)</source>
            <translation>Нет — запрашивать изменения у портала (режим опроса)</translation>
        </message>
        <message>
            <source>Needs: an inbound webhook URL only. Changes arrive within about the poll interval (10 s).</source>
            <translation>Нужно: только адрес входящего вебхука. Изменения приходят примерно за интервал опроса (10 с).</translation>
        </message>
        <message>
            <source>No — local application with offline events</source>
            <translation>Нет — локальное приложение с офлайн-событиями</translation>
        </message>
        <message>
            <source>Needs: the portal address, client ID and client secret of a local application, and a sign-in in the browser (a portal administrator). Changes arrive within about 2 s.</source>
            <translation>Нужно: адрес портала, client ID и client secret локального приложения и вход через браузер (администратор портала). Изменения приходят примерно за 2 с.</translation>
        </message>
        <message>
            <source>Yes — the portal can reach a public address</source>
            <translation>Да — портал может достучаться до публичного адреса</translation>
        </message>
        <message>
            <source>Needs: an inbound webhook, an outgoing webhook's application token and a public https address for this computer. Changes arrive within about 1 s.</source>
            <translation>Нужно: входящий вебхук, токен приложения исходящего вебхука и публичный https-адрес этого компьютера. Изменения приходят примерно за 1 с.</translation>
        </message>
        <message>
            <source>Pull mode: an inbound webhook</source>
            <translation>Режим опроса: входящий вебхук</translation>
        </message>
        <message>
            <source>Deal Monitor asks the portal every 10 seconds which deals changed; nothing has to reach this computer. In Bitrix24 open Developer resources → Other → Inbound webhook, allow CRM, and copy the URL.</source>
            <translation>Deal Monitor каждые 10 секунд спрашивает портал, какие сделки изменились; до этого компьютера ничего не должно доходить. В Битрикс24 откройте Разработчикам → Другое → Входящий вебхук, разрешите CRM и скопируйте адрес.</translation>
        </message>
        <message>
            <source>Local application, signed in through the browser</source>
            <translation>Локальное приложение со входом через браузер</translation>
        </message>
        <message>
            <source>In Bitrix24 open Applications → Developer resources → Other → Local application (in the Russian interface: Приложения → Разработчикам → Другое → Локальное приложение). Tick “Uses only API”, allow CRM, save, and copy the application code (client_id) and key (client_secret) the portal then shows.</source>
            <translation>В Битрикс24 откройте Приложения → Разработчикам → Другое → Локальное приложение (в английском интерфейсе: Applications → Developer resources → Other → Local application). Отметьте «Использует только API», разрешите CRM, сохраните и скопируйте показанные порталом код приложения (client_id) и ключ приложения (client_secret).</translation>
        </message>
        <message>
            <source>Sign in with Bitrix24</source>
            <translation>Войти через Битрикс24</translation>
        </message>
        <message>
            <source>Portal address</source>
            <translation>Адрес портала</translation>
        </message>
        <message>
            <source>Client ID</source>
            <translation>Код приложения (client_id)</translation>
        </message>
        <message>
            <source>Client secret</source>
            <translation>Ключ приложения (client_secret)</translation>
        </message>
        <message>
            <source>Public address: the portal sends events</source>
            <translation>Публичный адрес: портал отправляет события</translation>
        </message>
        <message>
            <source>Enter the portal address, for example https://example.bitrix24.ru.</source>
            <translation>Введите адрес портала, например https://example.bitrix24.ru.</translation>
        </message>
        <message>
            <source>Enter the client ID and the client secret.</source>
            <translation>Введите код приложения (client_id) и ключ (client_secret).</translation>
        </message>
        <message>
            <source>Signed in. Binding the offline events…</source>
            <translation>Вход выполнен. Подключаю офлайн-события…</translation>
        </message>
        <message>
            <source>Signed in; offline events are bound. Press Connect.</source>
            <translation>Вход выполнен, офлайн-события подключены. Нажмите «Подключить».</translation>
        </message>
        <message>
            <source>Bitrix24 must reach this computer: a tunnel or a reverse proxy gives it a public https address that forwards to the port below (set that address later in Settings → Public URL); an on-premise portal in the same network can use this computer's address.</source>
            <translation>Битрикс24 должен достучаться до этого компьютера: туннель или обратный прокси дают ему публичный https-адрес, который ведёт на порт ниже (этот адрес задаётся потом в Настройки → Публичный адрес); коробочный портал в той же сети может использовать адрес этого компьютера.</translation>
        </message>
    </context>
    <context>
        <name>Formatting</name>
        <message>
            <source>%1 s</source>
            <translation>%1 с</translation>
        </message>
        <message>
            <source>%1 min</source>
            <translation>%1 мин</translation>
        </message>
        <message>
            <source>%1 h %2 min</source>
            <translation>%1 ч %2 мин</translation>
        </message>
    </context>
    <context>
        <name>MainWindow</name>
        <message>
            <source>Deal Monitor</source>
            <translation>Deal Monitor</translation>
        </message>
        <message>
            <source>demo</source>
            <translation>демо</translation>
        </message>
        <message>
            <source>&amp;File</source>
            <translation>&amp;Файл</translation>
        </message>
        <message>
            <source>&amp;Sync</source>
            <translation>&amp;Синхронизация</translation>
        </message>
        <message>
            <source>&amp;View</source>
            <translation>&amp;Вид</translation>
        </message>
        <message>
            <source>&amp;Help</source>
            <translation>&amp;Справка</translation>
        </message>
        <message>
            <source>Resync deal</source>
            <translation>Перечитать сделку</translation>
        </message>
        <message>
            <source>Read the selected deals from the portal again (Ctrl+R)</source>
            <translation>Прочитать выбранные сделки из портала заново (Ctrl+R)</translation>
        </message>
        <message>
            <source>Resync all</source>
            <translation>Перечитать все</translation>
        </message>
        <message>
            <source>Read every deal of the portal again</source>
            <translation>Прочитать заново все сделки портала</translation>
        </message>
        <message>
            <source>Retry failed</source>
            <translation>Повторить неудачные</translation>
        </message>
        <message>
            <source>Try the failed events again</source>
            <translation>Повторить события, завершившиеся ошибкой</translation>
        </message>
        <message>
            <source>Dry run…</source>
            <translation>Пробный прогон…</translation>
        </message>
        <message>
            <source>Show what syncing the selected deals would write, without writing (Ctrl+D)</source>
            <translation>Показать, что записала бы синхронизация выбранных сделок, ничего не записывая (Ctrl+D)</translation>
        </message>
        <message>
            <source>Stage filter…</source>
            <translation>Фильтр стадий…</translation>
        </message>
        <message>
            <source>Choose the stages whose deals are not sent to production</source>
            <translation>Выбрать стадии, сделки в которых не передаются в производство</translation>
        </message>
        <message>
            <source>Settings…</source>
            <translation>Настройки…</translation>
        </message>
        <message>
            <source>Quit</source>
            <translation>Выйти</translation>
        </message>
        <message>
            <source>Reload tables</source>
            <translation>Обновить таблицы</translation>
        </message>
        <message>
            <source>Find…</source>
            <translation>Найти…</translation>
        </message>
        <message>
            <source>Deals</source>
            <translation>Сделки</translation>
        </message>
        <message>
            <source>Events</source>
            <translation>События</translation>
        </message>
        <message>
            <source>Open the log folder</source>
            <translation>Открыть папку журналов</translation>
        </message>
        <message>
            <source>About Deal Monitor</source>
            <translation>О программе Deal Monitor</translation>
        </message>
        <message>
            <source>Cancel</source>
            <translation>Отменить</translation>
        </message>
        <message>
            <source>Demo portal</source>
            <translation>Демо-портал</translation>
        </message>
        <message>
            <source>A simulated Bitrix24 portal on this computer; nothing here touches real data.</source>
            <translation>Имитация портала Битрикс24 на этом компьютере; настоящие данные не затрагиваются.</translation>
        </message>
        <message>
            <source>Filter deals: ID, title, pipeline or stage</source>
            <translation>Фильтр сделок: ID, название, воронка или стадия</translation>
        </message>
        <message>
            <source>Filter events: deal ID, event, error or sender</source>
            <translation>Фильтр событий: ID сделки, событие, ошибка или отправитель</translation>
        </message>
        <message>
            <source>All states</source>
            <translation>Все состояния</translation>
        </message>
        <message>
            <source>All statuses</source>
            <translation>Все статусы</translation>
        </message>
        <message>
            <source>Problems only</source>
            <translation>Только проблемы</translation>
        </message>
        <message>
            <source>Deal Monitor is still running</source>
            <translation>Deal Monitor продолжает работать</translation>
        </message>
        <message>
            <source>It keeps syncing in the background. Use the tray icon to open the window or to quit.</source>
            <translation>Синхронизация идёт в фоне. Открыть окно или выйти можно через значок в области уведомлений.</translation>
        </message>
        <message numerus="yes">
            <source>%1 of %n deal(s)</source>
            <translation>
                <numerusform>%1 из %n сделки</numerusform>
                <numerusform>%1 из %n сделок</numerusform>
                <numerusform>%1 из %n сделок</numerusform>
            </translation>
        </message>
        <message numerus="yes">
            <source>%n deal(s)</source>
            <translation>
                <numerusform>%n сделка</numerusform>
                <numerusform>%n сделки</numerusform>
                <numerusform>%n сделок</numerusform>
            </translation>
        </message>
        <message numerus="yes">
            <source>%1 of %n event(s)</source>
            <translation>
                <numerusform>%1 из %n события</numerusform>
                <numerusform>%1 из %n событий</numerusform>
                <numerusform>%1 из %n событий</numerusform>
            </translation>
        </message>
        <message>
            <source>Loading…</source>
            <translation>Загрузка…</translation>
        </message>
        <message>
            <source>Deals (%1)</source>
            <translation>Сделки (%1)</translation>
        </message>
        <message numerus="yes">
            <source>(%n failed)</source>
            <translation>
                <numerusform>(%n с ошибкой)</numerusform>
                <numerusform>(%n с ошибкой)</numerusform>
                <numerusform>(%n с ошибкой)</numerusform>
            </translation>
        </message>
        <message>
            <source>Select one or more deals first.</source>
            <translation>Сначала выберите одну или несколько сделок.</translation>
        </message>
        <message numerus="yes">
            <source>%n deal(s) will be read from the portal again.</source>
            <translation>
                <numerusform>%n сделка будет прочитана из портала заново.</numerusform>
                <numerusform>%n сделки будут прочитаны из портала заново.</numerusform>
                <numerusform>%n сделок будут прочитаны из портала заново.</numerusform>
            </translation>
        </message>
        <message>
            <source>Connect to the portal first.</source>
            <translation>Сначала подключитесь к порталу.</translation>
        </message>
        <message>
            <source>Resync all deals</source>
            <translation>Перечитать все сделки</translation>
        </message>
        <message>
            <source>Read every deal of the portal again and update the production database?

This can take a while on a large portal; you can keep working and cancel it at any time.</source>
            <translation>Прочитать заново все сделки портала и обновить базу производства?

На большом портале это займёт время; работать можно и дальше, а отменить — в любой момент.</translation>
        </message>
        <message>
            <source>A full resync is already running.</source>
            <translation>Полное перечитывание уже идёт.</translation>
        </message>
        <message numerus="yes">
            <source>%n failed event(s) queued again.</source>
            <translation>
                <numerusform>%n событие с ошибкой снова поставлено в очередь.</numerusform>
                <numerusform>%n события с ошибкой снова поставлены в очередь.</numerusform>
                <numerusform>%n событий с ошибкой снова поставлены в очередь.</numerusform>
            </translation>
        </message>
        <message>
            <source>There are no failed events.</source>
            <translation>Событий с ошибкой нет.</translation>
        </message>
        <message>
            <source>Deal Monitor %1

Keeps the production database in step with the deals of Bitrix24.</source>
            <translation>Deal Monitor %1

Поддерживает базу производства в соответствии со сделками Битрикс24.</translation>
        </message>
        <message>
            <source>Resume processing</source>
            <translation>Возобновить обработку</translation>
        </message>
        <message>
            <source>Pause processing</source>
            <translation>Приостановить обработку</translation>
        </message>
        <message>
            <source>Sync the events that arrived while paused</source>
            <translation>Синхронизировать события, пришедшие во время паузы</translation>
        </message>
        <message>
            <source>Stop writing to the production database; events are still received and kept</source>
            <translation>Остановить запись в базу производства; события по-прежнему принимаются и сохраняются</translation>
        </message>
        <message>
            <source>Show the events of this deal</source>
            <translation>Показать события этой сделки</translation>
        </message>
        <message>
            <source>Copy deal IDs</source>
            <translation>Скопировать ID сделок</translation>
        </message>
        <message>
            <source>Show the deal</source>
            <translation>Показать сделку</translation>
        </message>
        <message>
            <source>Copy the error</source>
            <translation>Скопировать ошибку</translation>
        </message>
        <message>
            <source>Demo</source>
            <translation>Демо</translation>
        </message>
        <message>
            <source>A simulated Bitrix24 portal creates and moves deals every few seconds. Nothing here touches your real data.</source>
            <translation>Имитация портала Битрикс24 создаёт и двигает сделки каждые несколько секунд. Ваши настоящие данные не затрагиваются.</translation>
        </message>
        <message>
            <source>Open settings</source>
            <translation>Открыть настройки</translation>
        </message>
        <message>
            <source>Deal Monitor could not start</source>
            <translation>Deal Monitor не удалось запустить</translation>
        </message>
        <message>
            <source>Not connected to a Bitrix24 portal yet. Events are received and kept, but deals cannot be read until the webhook is set.</source>
            <translation>Портал Битрикс24 ещё не подключён. События принимаются и сохраняются, но сделки нельзя прочитать, пока не задан вебхук.</translation>
        </message>
        <message>
            <source>Show</source>
            <translation>Показать</translation>
        </message>
        <message>
            <source>Receiving events at %1</source>
            <translation>Приём событий: %1</translation>
        </message>
        <message>
            <source>Bitrix24 sends events to %1</source>
            <translation>Битрикс24 отправляет события на %1</translation>
        </message>
        <message>
            <source>Starting…</source>
            <translation>Запуск…</translation>
        </message>
        <message>
            <source>Not running</source>
            <translation>Не запущено</translation>
        </message>
        <message>
            <source>Listener off: changes are found by reconciliation</source>
            <translation>Приём событий выключен: изменения находит сверка</translation>
        </message>
        <message>
            <source>unknown reason</source>
            <translation>причина неизвестна</translation>
        </message>
        <message>
            <source>Not receiving events: %1</source>
            <translation>События не принимаются: %1</translation>
        </message>
        <message>
            <source>Last event %1</source>
            <translation>Последнее событие %1</translation>
        </message>
        <message>
            <source>No events yet</source>
            <translation>Событий пока не было</translation>
        </message>
        <message>
            <source>Queue: %1</source>
            <translation>Очередь: %1</translation>
        </message>
        <message>
            <source>paused</source>
            <translation>пауза</translation>
        </message>
        <message>
            <source>Events waiting to be synced</source>
            <translation>События, ожидающие синхронизации</translation>
        </message>
        <message>
            <source>API budget %1/%2</source>
            <translation>Лимит API %1/%2</translation>
        </message>
        <message>
            <source>Requests the portal accepts right now without waiting (Bitrix24 limit)</source>
            <translation>Сколько запросов портал примет прямо сейчас без ожидания (лимит Битрикс24)</translation>
        </message>
        <message numerus="yes">
            <source>%n failed</source>
            <translation>
                <numerusform>%n с ошибкой</numerusform>
                <numerusform>%n с ошибкой</numerusform>
                <numerusform>%n с ошибкой</numerusform>
            </translation>
        </message>
        <message>
            <source>the portal refuses the webhook</source>
            <translation>портал отклоняет вебхук</translation>
        </message>
        <message>
            <source>changes arrive without events: %1</source>
            <translation>изменения приходят без событий: %1</translation>
        </message>
        <message>
            <source>Resync</source>
            <translation>Перечитывание</translation>
        </message>
        <message>
            <source>about %1 left</source>
            <translation>осталось около %1</translation>
        </message>
        <message>
            <source>Check connection…</source>
            <translation>Проверить подключение…</translation>
        </message>
    </context>
    <context>
        <name>MappingPage</name>
        <message>
            <source>— not written —</source>
            <translation>— не записывается —</translation>
        </message>
        <message>
            <source>Deal field</source>
            <translation>Поле сделки</translation>
        </message>
        <message>
            <source>Template</source>
            <translation>Шаблон</translation>
        </message>
        <message>
            <source>Constant</source>
            <translation>Константа</translation>
        </message>
        <message>
            <source>Name from the portal</source>
            <translation>Название с портала</translation>
        </message>
        <message>
            <source>as sent</source>
            <translation>как есть</translation>
        </message>
        <message>
            <source>text</source>
            <translation>текст</translation>
        </message>
        <message>
            <source>whole number</source>
            <translation>целое число</translation>
        </message>
        <message>
            <source>exact decimal (money)</source>
            <translation>точное десятичное (деньги)</translation>
        </message>
        <message>
            <source>date (the portal's day)</source>
            <translation>дата (день на портале)</translation>
        </message>
        <message>
            <source>date and time (UTC)</source>
            <translation>дата и время (UTC)</translation>
        </message>
        <message>
            <source>Y/N → yes/no</source>
            <translation>Y/N → да/нет</translation>
        </message>
        <message>
            <source>BB-code → plain text</source>
            <translation>BB-код → простой текст</translation>
        </message>
        <message>
            <source>Stage name</source>
            <translation>Название стадии</translation>
        </message>
        <message>
            <source>Pipeline name</source>
            <translation>Название воронки</translation>
        </message>
        <message>
            <source>Responsible person's name</source>
            <translation>Имя ответственного</translation>
        </message>
        <message>
            <source>Creator's name</source>
            <translation>Имя создателя сделки</translation>
        </message>
        <message>
            <source>Name of who changed it last</source>
            <translation>Имя того, кто изменил её последним</translation>
        </message>
        <message>
            <source>the table has no such column</source>
            <translation>в таблице нет такого столбца</translation>
        </message>
        <message>
            <source>the key column is not in the table</source>
            <translation>ключевого столбца нет в таблице</translation>
        </message>
        <message>
            <source>this column cannot hold deal IDs</source>
            <translation>в этом столбце нельзя хранить ID сделок</translation>
        </message>
        <message>
            <source>the table needs a single-column primary key for the link table, or choose a key column that holds the deal ID</source>
            <translation>для таблицы связей нужен первичный ключ из одного столбца — или выберите ключевой столбец с ID сделки</translation>
        </message>
        <message>
            <source>the primary key is not filled by the database: choose a key column that holds the deal ID</source>
            <translation>первичный ключ не заполняется базой данных автоматически: выберите ключевой столбец с ID сделки</translation>
        </message>
        <message>
            <source>this is the key column: it cannot also get a source</source>
            <translation>это ключевой столбец: источник ему назначить нельзя</translation>
        </message>
        <message>
            <source>the table requires a value here (NOT NULL without a default): choose a source</source>
            <translation>таблица требует здесь значение (NOT NULL без значения по умолчанию): выберите источник</translation>
        </message>
        <message>
            <source>a %1 cannot be written into a %2 column</source>
            <translation>значение «%1» нельзя записать в столбец типа «%2»</translation>
        </message>
        <message>
            <source>the column holds whole numbers: kopecks are rounded away</source>
            <translation>столбец хранит целые числа: копейки будут округлены</translation>
        </message>
        <message>
            <source>the column holds dates: the time of day is dropped</source>
            <translation>столбец хранит даты: время суток отбрасывается</translation>
        </message>
        <message>
            <source>the value goes in as text and the database converts it: better choose a conversion</source>
            <translation>значение передаётся текстом, и его преобразует база данных: лучше выбрать преобразование</translation>
        </message>
        <message>
            <source>%1 characters, the column holds %2</source>
            <translation>%1 символов, а столбец вмещает %2</translation>
        </message>
        <message>
            <source>the deal's ID and the product row's ID need two different columns</source>
            <translation>для ID сделки и ID товарной позиции нужны два разных столбца</translation>
        </message>
        <message>
            <source>the value is empty but the column does not allow NULL</source>
            <translation>значение пустое, а столбец не допускает NULL</translation>
        </message>
        <message>
            <source>decimal number</source>
            <translation>десятичное число</translation>
        </message>
        <message>
            <source>date</source>
            <translation>дата</translation>
        </message>
        <message>
            <source>date and time</source>
            <translation>дата и время</translation>
        </message>
        <message>
            <source>yes/no value</source>
            <translation>да/нет</translation>
        </message>
        <message>
            <source>value</source>
            <translation>значение</translation>
        </message>
        <message>
            <source>Default table (the app creates and owns it)</source>
            <translation>Стандартная таблица (программа создаёт и ведёт её сама)</translation>
        </message>
        <message>
            <source>Seed-compatible: deal(name, date, amount, comment, accounting)</source>
            <translation>Как в прежней версии: deal(name, date, amount, comment, accounting)</translation>
        </message>
        <message>
            <source>The warehouse's own table: choose per column</source>
            <translation>Своя таблица склада: источник для каждого столбца</translation>
        </message>
        <message>
            <source>Read the table</source>
            <translation>Прочитать таблицу</translation>
        </message>
        <message>
            <source>Read the table's columns from the database again</source>
            <translation>Заново прочитать столбцы таблицы из базы данных</translation>
        </message>
        <message>
            <source>Also write the deal's product rows into table</source>
            <translation>Записывать также товарные позиции сделки в таблицу</translation>
        </message>
        <message>
            <source>Dry run…</source>
            <translation>Пробный прогон…</translation>
        </message>
        <message>
            <source>Show what this mapping would write for real deals, without writing anything</source>
            <translation>Показать, что это сопоставление записало бы для настоящих сделок, ничего не записывая</translation>
        </message>
        <message>
            <source>The deal's ID goes into</source>
            <translation>ID сделки записывается в</translation>
        </message>
        <message>
            <source>the product row's ID (the key) into</source>
            <translation>ID товарной позиции (ключ) — в</translation>
        </message>
        <message>
            <source>Preset</source>
            <translation>Вариант</translation>
        </message>
        <message>
            <source>Rows are found by</source>
            <translation>Строки находятся по</translation>
        </message>
        <message>
            <source>Product ID</source>
            <translation>ID товара</translation>
        </message>
        <message>
            <source>Product name</source>
            <translation>Название товара</translation>
        </message>
        <message>
            <source>Price</source>
            <translation>Цена</translation>
        </message>
        <message>
            <source>Price without tax</source>
            <translation>Цена без налога</translation>
        </message>
        <message>
            <source>Quantity</source>
            <translation>Количество</translation>
        </message>
        <message>
            <source>Unit of measure</source>
            <translation>Единица измерения</translation>
        </message>
        <message>
            <source>Unit code</source>
            <translation>Код единицы измерения</translation>
        </message>
        <message>
            <source>Discount amount</source>
            <translation>Сумма скидки</translation>
        </message>
        <message>
            <source>Discount, %</source>
            <translation>Скидка, %</translation>
        </message>
        <message>
            <source>Tax rate, %</source>
            <translation>Ставка налога, %</translation>
        </message>
        <message>
            <source>Tax included (Y/N)</source>
            <translation>Налог включён в цену (Y/N)</translation>
        </message>
        <message>
            <source>Sort order</source>
            <translation>Порядок сортировки</translation>
        </message>
        <message>
            <source>Warehouse ID</source>
            <translation>ID склада</translation>
        </message>
        <message>
            <source>What was sold, for ordering materials: one row per product row of the deal, removed when it is removed in Bitrix24. The app fills the two key columns chosen below; a table that does not exist yet is created with the default columns.</source>
            <translation>Что продано — чтобы заказать материалы: одна строка на каждую товарную позицию сделки; удалённая в Битрикс24 позиция удаляется и здесь. Два ключевых столбца, выбранных ниже, заполняет программа; если таблицы ещё нет, она создаётся со стандартными столбцами.</translation>
        </message>
        <message>
            <source>the deal's ID</source>
            <translation>ID сделки</translation>
        </message>
        <message>
            <source>the product row's ID</source>
            <translation>ID товарной позиции</translation>
        </message>
        <message>
            <source>Product row field</source>
            <translation>Поле товарной позиции</translation>
        </message>
        <message>
            <source>Deals</source>
            <translation>Сделки</translation>
        </message>
        <message>
            <source>Product rows</source>
            <translation>Товарные позиции</translation>
        </message>
        <message>
            <source>Deal Monitor creates the table “%1” with one row per deal (bitrix_id, title, stage, amount, close date, ...). Nothing to map.</source>
            <translation>Deal Monitor создаёт таблицу «%1»: одна строка на сделку (bitrix_id, название, стадия, сумма, дата завершения, ...). Сопоставлять ничего не нужно.</translation>
        </message>
        <message>
            <source>For the seed's existing table: name = “Сделка №{ID} — {TITLE}”, date = close date, amount, comment, accounting = 1. Rows are found by deal ID through the link table “%1_link”, never by the name. Change any column to make it your own.</source>
            <translation>Для таблицы прежней версии: name = «Сделка №{ID} — {TITLE}», date = дата завершения, amount, comment, accounting = 1. Строки находятся по ID сделки через таблицу связей «%1_link», а не по названию. Измените любой столбец, чтобы настроить сопоставление под себя.</translation>
        </message>
        <message>
            <source>Reading the table's columns…</source>
            <translation>Читаю столбцы таблицы…</translation>
        </message>
        <message>
            <source>The table “%1” does not exist in this database.</source>
            <translation>В этой базе данных нет таблицы «%1».</translation>
        </message>
        <message>
            <source>Cannot read the table: %1</source>
            <translation>Не удаётся прочитать таблицу: %1</translation>
        </message>
        <message>
            <source>Pick a source for each column of the existing table “%1”. Columns in bold need a value in every new row; columns without a source are left alone.</source>
            <translation>Выберите источник для каждого столбца существующей таблицы «%1». Столбцам, выделенным жирным, нужно значение в каждой новой строке; столбцы без источника не изменяются.</translation>
        </message>
        <message>
            <source>the app's link table “%1_link” (the table's primary key)</source>
            <translation>таблице связей программы «%1_link» (по первичному ключу таблицы)</translation>
        </message>
        <message>
            <source>column “%1”, which holds the deal ID</source>
            <translation>столбцу «%1», в котором хранится ID сделки</translation>
        </message>
        <message>
            <source>The app creates the table if it is missing.</source>
            <translation>Если таблицы нет, программа создаст её.</translation>
        </message>
        <message>
            <source>The mapping cannot be checked: %1</source>
            <translation>Сопоставление не удаётся проверить: %1</translation>
        </message>
        <message numerus="yes">
            <source>This mapping cannot be written (%n problem(s)):</source>
            <translation>
                <numerusform>Такое сопоставление записать нельзя (%n проблема):</numerusform>
                <numerusform>Такое сопоставление записать нельзя (%n проблемы):</numerusform>
                <numerusform>Такое сопоставление записать нельзя (%n проблем):</numerusform>
            </translation>
        </message>
        <message numerus="yes">
            <source>The mapping fits the table; %n warning(s).</source>
            <translation>
                <numerusform>Сопоставление подходит к таблице; %n предупреждение.</numerusform>
                <numerusform>Сопоставление подходит к таблице; %n предупреждения.</numerusform>
                <numerusform>Сопоставление подходит к таблице; %n предупреждений.</numerusform>
            </translation>
        </message>
        <message>
            <source>The mapping fits the table.</source>
            <translation>Сопоставление подходит к таблице.</translation>
        </message>
        <message>
            <source>Read the table first, so the mapping can be checked.</source>
            <translation>Сначала прочитайте таблицу, чтобы проверить сопоставление.</translation>
        </message>
        <message>
            <source>Fix the mapping first: %1</source>
            <translation>Сначала исправьте сопоставление: %1</translation>
        </message>
    </context>
    <context>
        <name>OAuthAdvanced</name>
        <message>
            <source>automatic</source>
            <translation>автоматически</translation>
        </message>
        <message>
            <source>Allow plain http:// in the local network</source>
            <translation>Разрешить http:// в локальной сети</translation>
        </message>
        <message>
            <source>A cloud portal (an address in bitrix24.ru, bitrix24.com, …) needs none of this: leave it as it is.</source>
            <translation>Облачному порталу (адрес на bitrix24.ru, bitrix24.com, …) ничего из этого не нужно: оставьте как есть.</translation>
        </message>
        <message>
            <source>Empty: %1, the server of every cloud portal. An on-premise portal (on your own server) uses its own address, for example https://crm.example.com.</source>
            <translation>Пусто: %1 — сервер всех облачных порталов. Коробочный портал (на вашем собственном сервере) использует свой адрес, например https://crm.example.com.</translation>
        </message>
        <message>
            <source>The port on this computer the browser returns to after you approve the application. Empty: any free port. Enter a number only when the application's handler path in the portal names one (http://127.0.0.1:8766/oauth/callback → 8766).</source>
            <translation>Порт этого компьютера, на который браузер вернётся после того, как вы разрешите доступ приложению. Пусто: любой свободный порт. Укажите номер, только если путь обработчика приложения в портале содержит порт (http://127.0.0.1:8766/oauth/callback → 8766).</translation>
        </message>
        <message>
            <source>OAuth server</source>
            <translation>Сервер OAuth</translation>
        </message>
        <message>
            <source>Sign-in port</source>
            <translation>Порт для входа</translation>
        </message>
        <message>
            <source>Only for an on-premise portal at a private address (192.168.…, 10.…); never over the internet.</source>
            <translation>Только для коробочного портала с частным адресом (192.168.…, 10.…); никогда через интернет.</translation>
        </message>
        <message>
            <source>Advanced: OAuth server and sign-in port</source>
            <translation>Дополнительно: сервер OAuth и порт для входа</translation>
        </message>
    </context>
    <context>
        <name>SecretEdit</name>
        <message>
            <source>Hide</source>
            <translation>Скрыть</translation>
        </message>
        <message>
            <source>Show</source>
            <translation>Показать</translation>
        </message>
    </context>
    <context>
        <name>SettingsDialog</name>
        <message>
            <source>The token is empty. Copy it from the outgoing webhook's page in Bitrix24 (“Application token”).</source>
            <translation>Токен не указан. Скопируйте его со страницы исходящего вебхука в Битрикс24 («Токен приложения»).</translation>
        </message>
        <message>
            <source>The token must not contain spaces.</source>
            <translation>В токене не должно быть пробелов.</translation>
        </message>
        <message>
            <source>This does not look like a Bitrix24 application token (16–64 letters and digits).</source>
            <translation>Это не похоже на токен приложения Битрикс24 (16–64 латинские буквы и цифры).</translation>
        </message>
        <message>
            <source>Settings</source>
            <translation>Настройки</translation>
        </message>
        <message>
            <source>Test</source>
            <translation>Проверить</translation>
        </message>
        <message>
            <source>Standard (2 requests per second)</source>
            <translation>Стандартный (2 запроса в секунду)</translation>
        </message>
        <message>
            <source>Enterprise (5 requests per second)</source>
            <translation>Энтерпрайз (5 запросов в секунду)</translation>
        </message>
        <message>
            <source>Demo mode: the simulated portal's address and token are shown; changes here last until the app closes.</source>
            <translation>Демо-режим: показаны адрес и токен имитации портала; изменения здесь действуют до закрытия программы.</translation>
        </message>
        <message>
            <source>The webhook URL and the token are kept in the system keyring, not in the settings file.</source>
            <translation>Адрес вебхука и токен хранятся в системном хранилище паролей, а не в файле настроек.</translation>
        </message>
        <message>
            <source>This computer has no secure keyring, so the webhook URL and the token are kept only until the app closes; they are never written to disk. You will be asked for them at the next start.</source>
            <translation>На этом компьютере нет защищённого хранилища паролей, поэтому адрес вебхука и токен хранятся только до закрытия программы и никогда не записываются на диск. При следующем запуске их нужно будет ввести снова.</translation>
        </message>
        <message>
            <source>Bitrix24 portal</source>
            <translation>Портал Битрикс24</translation>
        </message>
        <message>
            <source>Inbound webhook URL</source>
            <translation>Адрес входящего вебхука</translation>
        </message>
        <message>
            <source>Application token</source>
            <translation>Токен приложения</translation>
        </message>
        <message>
            <source>Portal plan</source>
            <translation>Тариф портала</translation>
        </message>
        <message>
            <source>Event listener</source>
            <translation>Приём событий</translation>
        </message>
        <message>
            <source>Address and port</source>
            <translation>Адрес и порт</translation>
        </message>
        <message>
            <source>Path</source>
            <translation>Путь</translation>
        </message>
        <message>
            <source>Public URL</source>
            <translation>Публичный адрес</translation>
        </message>
        <message>
            <source>Bitrix24 sends events to the public URL (a tunnel or reverse proxy in front of this computer). Without one the app still finds every change by reconciliation, only later.</source>
            <translation>Битрикс24 отправляет события на публичный адрес (туннель или обратный прокси перед этим компьютером). Без него программа всё равно найдёт каждое изменение сверкой, только позже.</translation>
        </message>
        <message>
            <source>Production database</source>
            <translation>База производства</translation>
        </message>
        <message>
            <source>Database URL</source>
            <translation>Адрес базы данных</translation>
        </message>
        <message>
            <source>Table</source>
            <translation>Таблица</translation>
        </message>
        <message>
            <source>Empty: a SQLite file in the app's data folder. For PostgreSQL: postgresql+psycopg://user:password@host/database</source>
            <translation>Пусто — файл SQLite в папке данных программы. Для PostgreSQL: postgresql+psycopg://пользователь:пароль@сервер/база</translation>
        </message>
        <message>
            <source>When a deal cannot be synced</source>
            <translation>Когда сделку не удалось синхронизировать</translation>
        </message>
        <message>
            <source>When a deal reaches the production database for the first time</source>
            <translation>Когда сделка впервые попадает в базу производства</translation>
        </message>
        <message>
            <source>As the system</source>
            <translation>Как в системе</translation>
        </message>
        <message>
            <source>Notifications and language</source>
            <translation>Уведомления и язык</translation>
        </message>
        <message>
            <source>Notify</source>
            <translation>Уведомлять</translation>
        </message>
        <message>
            <source>Language</source>
            <translation>Язык</translation>
        </message>
        <message>
            <source>Start Deal Monitor when I log in</source>
            <translation>Запускать Deal Monitor при входе в систему</translation>
        </message>
        <message>
            <source>Start</source>
            <translation>Запуск</translation>
        </message>
        <message>
            <source>Could not change the start at login: %1</source>
            <translation>Не удалось изменить запуск при входе в систему: %1</translation>
        </message>
        <message>
            <source>Connection</source>
            <translation>Подключение</translation>
        </message>
        <message>
            <source>Choose…</source>
            <translation>Выбрать…</translation>
        </message>
        <message>
            <source>Empty: the standard folder shown. It holds the local state database (the event inbox), the default production database file and the logs. Another folder starts the app there with what that folder holds; the old folder is left as it is.</source>
            <translation>Пусто: стандартная папка (показана). В ней локальная база (очередь событий), файл рабочей базы по умолчанию и журналы. С другой папкой программа перезапускается на ней, с тем, что в ней есть; старая папка остаётся как есть.</translation>
        </message>
        <message>
            <source>Data folder</source>
            <translation>Папка данных</translation>
        </message>
        <message>
            <source>Production table</source>
            <translation>Таблица производства</translation>
        </message>
        <message>
            <source>The dry run reads deals from the portal: connect to the portal first.</source>
            <translation>Пробный прогон читает сделки с портала: сначала подключитесь к порталу.</translation>
        </message>
        <message>
            <source>Checking…</source>
            <translation>Проверка…</translation>
        </message>
        <message>
            <source>Enter the inbound webhook URL: in Bitrix24 open Developer resources → Other → Inbound webhook, allow CRM, and copy the URL.</source>
            <translation>Введите адрес входящего вебхука: в Битрикс24 откройте «Разработчикам» → «Другое» → «Входящий вебхук», разрешите CRM и скопируйте адрес.</translation>
        </message>
        <message>
            <source>The portal answered: the webhook works.</source>
            <translation>Портал ответил: вебхук работает.</translation>
        </message>
        <message>
            <source>The token looks right. Events signed with another token are rejected and listed in the Events tab.</source>
            <translation>Токен выглядит правильно. События с другим токеном отклоняются и видны на вкладке «События».</translation>
        </message>
        <message>
            <source>Deal Monitor is listening there now.</source>
            <translation>Deal Monitor сейчас принимает события по этому адресу.</translation>
        </message>
        <message>
            <source>Port 0 picks a free port at every start; Bitrix24 then needs a tunnel that follows it.</source>
            <translation>Порт 0 — при каждом запуске выбирается свободный порт; тогда Битрикс24 нужен туннель, который следует за ним.</translation>
        </message>
        <message>
            <source>This address is free: the app can listen there.</source>
            <translation>Адрес свободен: программа сможет принимать на нём события.</translation>
        </message>
        <message>
            <source>No public URL: Bitrix24 cannot send events to this computer directly; changes are still found by reconciliation.</source>
            <translation>Публичный адрес не задан: Битрикс24 не сможет отправлять события на этот компьютер напрямую; изменения всё равно найдёт сверка.</translation>
        </message>
        <message>
            <source>The public URL reaches this app.</source>
            <translation>Публичный адрес ведёт в эту программу.</translation>
        </message>
        <message>
            <source>Deal Monitor</source>
            <translation>Deal Monitor</translation>
        </message>
        <message>
            <source>This is how Deal Monitor tells you about failed syncs and new deals in production.</source>
            <translation>Так Deal Monitor сообщает о неудачной синхронизации и о новых сделках в производстве.</translation>
        </message>
        <message>
            <source>Enter the folder's full path (or choose it), or leave it empty.</source>
            <translation>Введите полный путь к папке (или выберите её) либо оставьте поле пустым.</translation>
        </message>
        <message>
            <source>Nothing answers at this address (%1). Check the tunnel or proxy.</source>
            <translation>По этому адресу никто не отвечает (%1). Проверьте туннель или прокси.</translation>
        </message>
        <message>
            <source>%1 answered HTTP %2, not Deal Monitor: check that it forwards to this computer's listener.</source>
            <translation>%1 ответил HTTP %2, это не Deal Monitor: проверьте, что запросы перенаправляются на приёмник событий этого компьютера.</translation>
        </message>
        <message>
            <source>unchanged</source>
            <translation>без изменений</translation>
        </message>
        <message>
            <source>Offline events (changes within about 2 s)</source>
            <translation>Офлайн-события (изменения примерно за 2 с)</translation>
        </message>
        <message>
            <source>Used when the inbound webhook URL above is empty. The portal shows the client ID and secret under Applications → Developer resources → Other → Local application. After saving, sign in from the main window (a portal administrator, for offline events).</source>
            <translation>Используется, когда адрес входящего вебхука выше пуст. Код и ключ приложения портал показывает в разделе Приложения → Разработчикам → Другое → Локальное приложение. После сохранения войдите из главного окна (для офлайн-событий — администратором портала).</translation>
        </message>
        <message>
            <source>Local application</source>
            <translation>Локальное приложение</translation>
        </message>
        <message>
            <source>Portal address</source>
            <translation>Адрес портала</translation>
        </message>
        <message>
            <source>Client ID</source>
            <translation>Код приложения</translation>
        </message>
        <message>
            <source>Client secret</source>
            <translation>Ключ приложения</translation>
        </message>
    </context>
    <context>
        <name>SignInBar</name>
        <message>
            <source>The portal needs a new sign-in; until then nothing is read from it.</source>
            <translation>Нужно снова войти в портал; до тех пор из него ничего не читается.</translation>
        </message>
        <message>
            <source>Sign in again</source>
            <translation>Войти снова</translation>
        </message>
        <message>
            <source>Signed in to the portal again.</source>
            <translation>Вход в портал снова выполнен.</translation>
        </message>
    </context>
    <context>
        <name>SourceTable</name>
        <message>
            <source>Column</source>
            <translation>Столбец</translation>
        </message>
        <message>
            <source>Type</source>
            <translation>Тип</translation>
        </message>
        <message>
            <source>Source</source>
            <translation>Источник</translation>
        </message>
        <message>
            <source>Value</source>
            <translation>Значение</translation>
        </message>
        <message>
            <source>Conversion</source>
            <translation>Преобразование</translation>
        </message>
        <message>
            <source>Check</source>
            <translation>Проверка</translation>
        </message>
        <message>
            <source>not in the table</source>
            <translation>нет в таблице</translation>
        </message>
        <message>
            <source>required</source>
            <translation>обязательный</translation>
        </message>
        <message>
            <source>filled by the app</source>
            <translation>заполняет программа</translation>
        </message>
    </context>
    <context>
        <name>StageFilterDialog</name>
        <message>
            <source>Stage filter</source>
            <translation>Фильтр стадий</translation>
        </message>
        <message>
            <source>Deals in the checked stages are not sent to the production database. A change applies at once.</source>
            <translation>Сделки на отмеченных стадиях не передаются в базу производства. Изменение действует сразу.</translation>
        </message>
        <message>
            <source>Try again</source>
            <translation>Повторить</translation>
        </message>
        <message>
            <source>Pipeline and stage</source>
            <translation>Воронка и стадия</translation>
        </message>
        <message>
            <source>Deals</source>
            <translation>Сделок</translation>
        </message>
        <message>
            <source>A checked stage is skipped in its own pipeline only: stages with the same name in other pipelines are not affected.</source>
            <translation>Отмеченная стадия пропускается только в своей воронке: одноимённые стадии других воронок это не затрагивает.</translation>
        </message>
        <message>
            <source>Some stages are skipped in every pipeline, including pipelines added later; by default the start stage NEW is. Unchecking such a stage in one pipeline keeps it skipped in the others.</source>
            <translation>Некоторые стадии пропускаются во всех воронках, включая те, что появятся позже; по умолчанию так пропускается начальная стадия NEW. Если снять отметку с такой стадии в одной воронке, в остальных она по-прежнему будет пропускаться.</translation>
        </message>
        <message>
            <source>The pipelines come from the portal: connect to a portal in the settings first.</source>
            <translation>Воронки читаются из портала: сначала подключите портал в настройках.</translation>
        </message>
        <message>
            <source>Loading the portal's pipelines…</source>
            <translation>Загрузка воронок портала…</translation>
        </message>
        <message>
            <source>Could not read the pipelines: %1</source>
            <translation>Не удалось прочитать воронки: %1</translation>
        </message>
        <message numerus="yes">
            <source>%n deal(s) skipped so far now pass the filter.</source>
            <translation>
                <numerusform>Теперь фильтр пропускает %n ранее отложенную сделку.</numerusform>
                <numerusform>Теперь фильтр пропускает %n ранее отложенные сделки.</numerusform>
                <numerusform>Теперь фильтр пропускает %n ранее отложенных сделок.</numerusform>
            </translation>
        </message>
        <message>
            <source>Sync them now</source>
            <translation>Синхронизировать сейчас</translation>
        </message>
        <message numerus="yes">
            <source>%n deal(s) will be read from the portal and written to production.</source>
            <translation>
                <numerusform>%n сделка будет прочитана из портала и передана в производство.</numerusform>
                <numerusform>%n сделки будут прочитаны из портала и переданы в производство.</numerusform>
                <numerusform>%n сделок будут прочитаны из портала и переданы в производство.</numerusform>
            </translation>
        </message>
    </context>
    <context>
        <name>Texts</name>
        <message>
            <source>queued</source>
            <translation>в очереди</translation>
        </message>
        <message>
            <source>synced</source>
            <translation>синхронизировано</translation>
        </message>
        <message>
            <source>skipped by stage</source>
            <translation>пропущено по стадии</translation>
        </message>
        <message>
            <source>deleted</source>
            <translation>удалено</translation>
        </message>
        <message>
            <source>failed</source>
            <translation>ошибка</translation>
        </message>
        <message>
            <source>ignored</source>
            <translation>не обрабатывается</translation>
        </message>
        <message>
            <source>rejected</source>
            <translation>отклонено</translation>
        </message>
        <message>
            <source>waiting to retry</source>
            <translation>ждёт повтора</translation>
        </message>
        <message>
            <source>push</source>
            <translation>онлайн</translation>
        </message>
        <message>
            <source>offline</source>
            <translation>офлайн</translation>
        </message>
        <message>
            <source>reconcile</source>
            <translation>сверка</translation>
        </message>
        <message>
            <source>manual</source>
            <translation>вручную</translation>
        </message>
        <message>
            <source>sent to production</source>
            <comment>deal state</comment>
            <translation>передана в производство</translation>
        </message>
        <message>
            <source>skipped by stage</source>
            <comment>deal state</comment>
            <translation>пропущена по стадии</translation>
        </message>
        <message>
            <source>deleted in the portal</source>
            <comment>deal state</comment>
            <translation>удалена в портале</translation>
        </message>
        <message>
            <source>sync failed</source>
            <comment>deal state</comment>
            <translation>ошибка синхронизации</translation>
        </message>
        <message>
            <source>Deal created</source>
            <translation>Сделка создана</translation>
        </message>
        <message>
            <source>Deal changed</source>
            <translation>Сделка изменена</translation>
        </message>
        <message>
            <source>Deal deleted</source>
            <translation>Сделка удалена</translation>
        </message>
        <message>
            <source>Deal moved to a pipeline</source>
            <translation>Сделка перенесена в воронку</translation>
        </message>
        <message>
            <source>Resync</source>
            <translation>Перечитывание</translation>
        </message>
        <message>
            <source>Reconciliation</source>
            <translation>Сверка</translation>
        </message>
        <message>
            <source>App installed</source>
            <translation>Приложение установлено</translation>
        </message>
        <message>
            <source>App removed</source>
            <translation>Приложение удалено</translation>
        </message>
        <message>
            <source>Request refused (HTTP %1)</source>
            <translation>Запрос отклонён (HTTP %1)</translation>
        </message>
        <message>
            <source>Events</source>
            <translation>События</translation>
        </message>
        <message>
            <source>Read</source>
            <translation>Чтение</translation>
        </message>
        <message>
            <source>Decision</source>
            <translation>Решение</translation>
        </message>
        <message>
            <source>Written</source>
            <translation>Запись</translation>
        </message>
        <message>
            <source>Error</source>
            <translation>Ошибка</translation>
        </message>
        <message>
            <source>Read from the portal: stage “%1”, changed %2</source>
            <translation>Прочитана из портала: стадия «%1», изменена %2</translation>
        </message>
        <message>
            <source>Not sent to production: stage “%1” is skipped by the stage filter</source>
            <translation>Не передана в производство: стадия «%1» пропускается фильтром стадий</translation>
        </message>
        <message>
            <source>Written to the production database (new row)</source>
            <translation>Записана в базу производства (новая строка)</translation>
        </message>
        <message>
            <source>Updated in the production database</source>
            <translation>Обновлена в базе производства</translation>
        </message>
        <message>
            <source>The production database already holds newer data; not written</source>
            <translation>В базе производства уже более новые данные; не записана</translation>
        </message>
        <message>
            <source>Deleted in the portal; marked deleted in the production database</source>
            <translation>Удалена в портале; в базе производства помечена как удалённая</translation>
        </message>
        <message>
            <source>Deleted in the portal; it never reached the production database</source>
            <translation>Удалена в портале; в базу производства не попадала</translation>
        </message>
        <message>
            <source>Not readable yet; will read again shortly</source>
            <translation>Пока не читается; скоро попробуем снова</translation>
        </message>
        <message>
            <source>Could not read the deal: %1</source>
            <translation>Не удалось прочитать сделку: %1</translation>
        </message>
        <message>
            <source>Product rows written: %1</source>
            <translation>Записано товарных строк: %1</translation>
        </message>
        <message>
            <source>wrong application token</source>
            <translation>неверный токен приложения</translation>
        </message>
        <message>
            <source>the application token is not set in the settings</source>
            <translation>токен приложения не задан в настройках</translation>
        </message>
        <message>
            <source>event from another portal (member_id)</source>
            <translation>событие с другого портала (member_id)</translation>
        </message>
        <message>
            <source>event from another portal (domain)</source>
            <translation>событие с другого портала (домен)</translation>
        </message>
        <message>
            <source>malformed request: no event name</source>
            <translation>неверный запрос: нет имени события</translation>
        </message>
        <message>
            <source>malformed request: no deal ID</source>
            <translation>неверный запрос: нет ID сделки</translation>
        </message>
        <message>
            <source>malformed request: bad time stamp</source>
            <translation>неверный запрос: ошибочная отметка времени</translation>
        </message>
        <message>
            <source>malformed request: bad handler ID</source>
            <translation>неверный запрос: ошибочный ID обработчика</translation>
        </message>
        <message>
            <source>the sender is not in the allowed networks</source>
            <translation>отправитель не входит в разрешённые сети</translation>
        </message>
        <message>
            <source>unknown sender address</source>
            <translation>неизвестный адрес отправителя</translation>
        </message>
        <message>
            <source>malformed request: not a form</source>
            <translation>неверный запрос: это не форма</translation>
        </message>
        <message>
            <source>malformed request: bad length</source>
            <translation>неверный запрос: ошибочная длина</translation>
        </message>
        <message>
            <source>request too large</source>
            <translation>слишком большой запрос</translation>
        </message>
        <message>
            <source>empty request</source>
            <translation>пустой запрос</translation>
        </message>
        <message>
            <source>not readable yet (the portal is still saving it)</source>
            <translation>пока не читается (портал ещё сохраняет сделку)</translation>
        </message>
        <message>
            <source>not started</source>
            <translation>мониторинг не запущен</translation>
        </message>
        <message>
            <source>no sign-in yet</source>
            <translation>вход ещё не выполнен</translation>
        </message>
        <message>
            <source>the application was removed from the portal</source>
            <translation>приложение удалено с портала</translation>
        </message>
        <message>
            <source>the integrity check failed</source>
            <translation>проверка целостности не прошла</translation>
        </message>
        <message>
            <source>state database was corrupt; moved aside, full reconciliation follows</source>
            <translation>служебная база данных была повреждена и отложена в сторону; будет выполнена полная сверка</translation>
        </message>
        <message>
            <source>malformed request: %1</source>
            <translation>неверный запрос: %1</translation>
        </message>
        <message>
            <source>reconciliation failed: %1</source>
            <translation>сверка не удалась: %1</translation>
        </message>
        <message>
            <source>production database: %1</source>
            <translation>база производства: %1</translation>
        </message>
        <message>
            <source>internal error: %1</source>
            <translation>внутренняя ошибка: %1</translation>
        </message>
        <message>
            <source>cannot use this URL: %1</source>
            <translation>этот адрес базы данных не подходит: %1</translation>
        </message>
        <message>
            <source>cannot listen on %1: %2</source>
            <translation>не удаётся принимать события на %1: %2</translation>
        </message>
        <message>
            <source>target table %1 lacks columns: %2</source>
            <translation>в таблице %1 нет столбцов: %2</translation>
        </message>
        <message>
            <source>product table %1 lacks columns: %2</source>
            <translation>в таблице товаров %1 нет столбцов: %2</translation>
        </message>
        <message>
            <source>target table %1 does not exist</source>
            <translation>таблицы %1 нет в базе производства</translation>
        </message>
        <message>
            <source>unsupported target database: %1</source>
            <translation>эта база данных не поддерживается: %1</translation>
        </message>
        <message>
            <source>Many requests with a wrong application token came in the last hour. If the token was changed in Bitrix24, enter the new one in the settings; otherwise someone is probing the listener (the Events tab lists the senders).</source>
            <translation>За последний час пришло много запросов с неверным токеном приложения. Если токен сменили в Битрикс24, введите новый в настройках; иначе кто-то прощупывает приёмник событий (отправители — на вкладке «События»).</translation>
        </message>
        <message>
            <source>Events still come signed with the previous application token. They are accepted for a while; check that the token in the settings is the one the outgoing webhook in Bitrix24 shows now.</source>
            <translation>События всё ещё приходят с прежним токеном приложения. Какое-то время они принимаются; проверьте, что в настройках указан тот токен, который сейчас показывает исходящий вебхук в Битрикс24.</translation>
        </message>
        <message>
            <source>A delete event came for a deal that still exists in Bitrix24; the deal was kept. Someone else may hold the application token: consider a new one.</source>
            <translation>Пришло событие удаления сделки, которая в Битрикс24 по-прежнему есть; сделка сохранена. Возможно, токен приложения известен кому-то ещё: стоит выпустить новый.</translation>
        </message>
        <message>
            <source>Another program may use this port: choose another port or stop that program.</source>
            <translation>Возможно, этот порт занят другой программой: выберите другой порт или закройте ту программу.</translation>
        </message>
        <message>
            <source>Check that the target database is running and the URL in the settings is right.</source>
            <translation>Проверьте, что база производства работает и её адрес в настройках указан верно.</translation>
        </message>
        <message>
            <source>The webhook URL is wrong or was revoked: create a new inbound webhook.</source>
            <translation>Адрес вебхука неверен или вебхук отозван: создайте новый входящий вебхук.</translation>
        </message>
        <message>
            <source>Authorize the app again in the settings.</source>
            <translation>Заново авторизуйте приложение в настройках.</translation>
        </message>
        <message>
            <source>The portal asked to slow down; the app waits and retries by itself.</source>
            <translation>Портал попросил снизить частоту запросов; программа подождёт и повторит запрос сама.</translation>
        </message>
        <message>
            <source>The portal blocked REST calls; contact Bitrix24 support.</source>
            <translation>Портал заблокировал REST-запросы; обратитесь в поддержку Битрикс24.</translation>
        </message>
        <message>
            <source>The webhook or app lacks the CRM permission.</source>
            <translation>У вебхука или приложения нет доступа к CRM.</translation>
        </message>
        <message>
            <source>The portal did not answer: check the network connection.</source>
            <translation>Портал не ответил: проверьте подключение к сети.</translation>
        </message>
        <message>
            <source>Add the columns, or change mapping.product_columns.</source>
            <translation>Добавьте столбцы или измените mapping.product_columns.</translation>
        </message>
        <message>
            <source>Point the app at another table, or add the columns.</source>
            <translation>Укажите другую таблицу или добавьте в эту недостающие столбцы.</translation>
        </message>
        <message>
            <source>Create the table, or pick the default preset, which creates its own.</source>
            <translation>Создайте таблицу или выберите вариант со стандартной таблицей — её программа создаёт сама.</translation>
        </message>
        <message>
            <source>Fix the mapping: map only columns the table has, with a fitting conversion.</source>
            <translation>Исправьте сопоставление: используйте только столбцы, которые есть в таблице, с подходящим преобразованием.</translation>
        </message>
        <message>
            <source>The deal was deleted in the portal.</source>
            <translation>Сделка удалена на портале.</translation>
        </message>
        <message>
            <source>the webhook URL is wrong or was revoked</source>
            <translation>адрес вебхука неверен или вебхук удалён</translation>
        </message>
        <message>
            <source>the portal asked to slow down</source>
            <translation>портал просит снизить частоту запросов</translation>
        </message>
        <message>
            <source>the portal's time budget for this method is used up</source>
            <translation>исчерпан лимит времени портала для этого метода</translation>
        </message>
        <message>
            <source>the portal blocked REST calls</source>
            <translation>портал заблокировал REST-запросы</translation>
        </message>
        <message>
            <source>the portal had an internal error</source>
            <translation>внутренняя ошибка портала</translation>
        </message>
        <message>
            <source>the webhook lacks the CRM permission</source>
            <translation>у вебхука нет доступа к CRM</translation>
        </message>
        <message>
            <source>the app must be authorized again</source>
            <translation>приложение нужно авторизовать заново</translation>
        </message>
        <message>
            <source>no connection to the portal</source>
            <translation>нет связи с порталом</translation>
        </message>
        <message>
            <source>the address did not answer like a Bitrix24 portal</source>
            <translation>по этому адресу отвечает не портал Битрикс24</translation>
        </message>
        <message>
            <source>the portal answered with an HTTP error</source>
            <translation>портал ответил ошибкой HTTP</translation>
        </message>
        <message>
            <source>the app is not installed on the portal</source>
            <translation>приложение не установлено на портале</translation>
        </message>
        <message>
            <source>the portal's plan does not allow REST calls</source>
            <translation>тариф портала не позволяет REST-запросы</translation>
        </message>
        <message>
            <source>must be true or false</source>
            <translation>нужно значение true или false</translation>
        </message>
        <message>
            <source>must be a whole number</source>
            <translation>нужно целое число</translation>
        </message>
        <message>
            <source>must be a number</source>
            <translation>нужно число</translation>
        </message>
        <message>
            <source>must be a string</source>
            <translation>нужна строка</translation>
        </message>
        <message>
            <source>must be a table of strings</source>
            <translation>нужна таблица строковых значений</translation>
        </message>
        <message>
            <source>must be a list of strings</source>
            <translation>нужен список строк</translation>
        </message>
        <message>
            <source>unsupported type</source>
            <translation>неподдерживаемый тип</translation>
        </message>
        <message>
            <source>must be a table</source>
            <translation>нужен раздел (таблица TOML)</translation>
        </message>
        <message>
            <source>unknown key</source>
            <translation>неизвестный параметр</translation>
        </message>
        <message>
            <source>must be an http(s) URL</source>
            <translation>нужен адрес, начинающийся с http:// или https://</translation>
        </message>
        <message>
            <source>must look like https://&lt;portal&gt;/rest/&lt;user id&gt;/&lt;secret&gt;/</source>
            <translation>адрес должен иметь вид https://&lt;портал&gt;/rest/&lt;ID пользователя&gt;/&lt;секрет&gt;/</translation>
        </message>
        <message>
            <source>is needed with client_id (the portal's address)</source>
            <translation>нужен вместе с client_id (адрес портала)</translation>
        </message>
        <message>
            <source>works only for an OAuth app (set client_id)</source>
            <translation>работает только для OAuth-приложения (укажите client_id)</translation>
        </message>
        <message>
            <source>must be 32 hexadecimal characters</source>
            <translation>нужно 32 шестнадцатеричных символа</translation>
        </message>
        <message>
            <source>must be between 0 and 65535</source>
            <translation>нужно число от 0 до 65535</translation>
        </message>
        <message>
            <source>must start with / and not be /healthz</source>
            <translation>путь должен начинаться с «/» и не может быть «/healthz»</translation>
        </message>
        <message>
            <source>must be a public https:// URL (the token travels in the body: never in clear)</source>
            <translation>нужен публичный адрес https:// (токен передаётся в теле запроса и не должен идти открытым текстом)</translation>
        </message>
        <message>
            <source>not an IP network</source>
            <translation>это не IP-сеть</translation>
        </message>
        <message>
            <source>must be an IP address</source>
            <translation>нужен IP-адрес</translation>
        </message>
        <message>
            <source>must be between 0 and 60</source>
            <translation>нужно число от 0 до 60</translation>
        </message>
        <message>
            <source>must not be below debounce_seconds</source>
            <translation>не может быть меньше debounce_seconds</translation>
        </message>
        <message>
            <source>must not be negative (0 turns it off)</source>
            <translation>не может быть отрицательным (0 — выключено)</translation>
        </message>
        <message>
            <source>must be at least 1</source>
            <translation>нужно не меньше 1</translation>
        </message>
        <message>
            <source>must be at least 1 (or 0: off)</source>
            <translation>нужно не меньше 1 (или 0 — выключено)</translation>
        </message>
        <message>
            <source>must be above 0</source>
            <translation>нужно больше 0</translation>
        </message>
        <message>
            <source>not a database URL (sqlite:///state.db or postgresql+psycopg://user@host/db)</source>
            <translation>это не адрес базы данных (sqlite:///state.db или postgresql+psycopg://user@host/db)</translation>
        </message>
        <message>
            <source>must be a whole number (the settings file's format)</source>
            <translation>нужно целое число (формат файла настроек)</translation>
        </message>
        <message>
            <source>this file is for a newer Deal Monitor (format %1, this one reads up to %2)</source>
            <translation>файл от более новой версии Deal Monitor (формат %1, эта версия читает до %2)</translation>
        </message>
        <message>
            <source>%1 cannot hold the state DB: use SQLite (sqlite:///state.db) or PostgreSQL (postgresql+psycopg://user@host/db)</source>
            <translation>%1 не подходит для базы состояния: нужна SQLite (sqlite:///state.db) или PostgreSQL (postgresql+psycopg://user@host/db)</translation>
        </message>
        <message>
            <source>must be a plain SQL identifier</source>
            <translation>нужно простое имя SQL: латинские буквы, цифры и «_», не с цифры, до 63 символов</translation>
        </message>
        <message>
            <source>Address already in use</source>
            <translation>порт уже занят другой программой</translation>
        </message>
        <message>
            <source>Permission denied</source>
            <translation>нет разрешения (для портов ниже 1024 нужны права администратора)</translation>
        </message>
        <message>
            <source>Cannot assign requested address</source>
            <translation>у этого компьютера нет такого адреса</translation>
        </message>
        <message>
            <source>must be an SQLAlchemy URL such as sqlite:///path.db</source>
            <translation>нужен адрес SQLAlchemy, например sqlite:///path.db</translation>
        </message>
        <message>
            <source>source must start with field:, template:, const: or lookup:</source>
            <translation>источник должен начинаться с field:, template:, const: или lookup:</translation>
        </message>
        <message>
            <source>field: needs a field name</source>
            <translation>после field: нужно имя поля</translation>
        </message>
        <message>
            <source>must differ from product_deal_column</source>
            <translation>должен отличаться от product_deal_column</translation>
        </message>
        <message>
            <source>a custom mapping needs at least one column</source>
            <translation>в собственном сопоставлении нужен хотя бы один столбец</translation>
        </message>
        <message>
            <source>must be one of %1</source>
            <translation>допустимые значения: %1</translation>
        </message>
        <message>
            <source>unknown section (known: %1)</source>
            <translation>неизвестный раздел (известные: %1)</translation>
        </message>
        <message>
            <source>not a stage id: %1</source>
            <translation>это не код стадии: %1</translation>
        </message>
        <message>
            <source>bad template (%1)</source>
            <translation>ошибка в шаблоне (%1)</translation>
        </message>
        <message>
            <source>unknown lookup %1 (known: %2)</source>
            <translation>неизвестный справочник %1 (известные: %2)</translation>
        </message>
        <message>
            <source>file not found: %1</source>
            <translation>файл не найден: %1</translation>
        </message>
        <message>
            <source>not valid TOML (%1)</source>
            <translation>файл не в формате TOML (%1)</translation>
        </message>
        <message>
            <source>Title</source>
            <translation>Название</translation>
        </message>
        <message>
            <source>Stage</source>
            <translation>Стадия</translation>
        </message>
        <message>
            <source>Pipeline</source>
            <translation>Воронка</translation>
        </message>
        <message>
            <source>Amount</source>
            <translation>Сумма</translation>
        </message>
        <message>
            <source>Currency</source>
            <translation>Валюта</translation>
        </message>
        <message>
            <source>Close date</source>
            <translation>Дата закрытия</translation>
        </message>
        <message>
            <source>Start date</source>
            <translation>Дата начала</translation>
        </message>
        <message>
            <source>Comment</source>
            <translation>Комментарий</translation>
        </message>
        <message>
            <source>Responsible</source>
            <translation>Ответственный</translation>
        </message>
        <message>
            <source>Stage changed at</source>
            <translation>Стадия изменена</translation>
        </message>
        <message>
            <source>Stage changed by</source>
            <translation>Стадию изменил</translation>
        </message>
        <message>
            <source>Stage group</source>
            <translation>Группа стадии</translation>
        </message>
        <message>
            <source>Closed</source>
            <translation>Закрыта</translation>
        </message>
        <message>
            <source>New</source>
            <translation>Новая</translation>
        </message>
        <message>
            <source>Type</source>
            <translation>Тип</translation>
        </message>
        <message>
            <source>Source</source>
            <translation>Источник</translation>
        </message>
        <message>
            <source>Tax</source>
            <translation>Налог</translation>
        </message>
        <message>
            <source>Probability</source>
            <translation>Вероятность</translation>
        </message>
        <message>
            <source>Company</source>
            <translation>Компания</translation>
        </message>
        <message>
            <source>Contact</source>
            <translation>Контакт</translation>
        </message>
        <message>
            <source>Amount entered by hand</source>
            <translation>Сумма введена вручную</translation>
        </message>
        <message>
            <source>The portal did not allow the application: approve it on the portal's page, or ask a portal administrator.</source>
            <extracomment>The English problems of ``config.ConfigError`` that have a translation (exact text) ... ... and the patterns of those that embed a value.</extracomment>
            <translation>Портал не разрешил доступ приложению: разрешите его на странице портала или обратитесь к администратору портала.</translation>
        </message>
        <message>
            <source>The portal did not accept the application's code: check the client ID and the client secret, then sign in again.</source>
            <translation>Портал не принял код приложения: проверьте client_id и client_secret и войдите снова.</translation>
        </message>
        <message>
            <source>The browser did not come back in time: press the button and approve the application again.</source>
            <translation>Браузер не вернулся вовремя: нажмите кнопку и снова разрешите доступ приложению.</translation>
        </message>
        <message>
            <source>The sign-in was cancelled.</source>
            <translation>Вход отменён.</translation>
        </message>
        <message>
            <source>Change poll</source>
            <translation>Опрос изменений</translation>
        </message>
        <message>
            <source>Waiting for the browser: approve the application on the portal's page…</source>
            <translation>Жду браузер: разрешите доступ приложению на странице портала…</translation>
        </message>
        <message>
            <source>Signed in, but the offline events could not be bound (%1). A portal administrator must sign in; until then changes come with reconciliation.</source>
            <translation>Вход выполнен, но офлайн-события подключить не удалось (%1). Войти должен администратор портала; до тех пор изменения приходят со сверкой.</translation>
        </message>
    </context>
    <context>
        <name>TrayIcon</name>
        <message>
            <source>Open Deal Monitor</source>
            <translation>Открыть Deal Monitor</translation>
        </message>
        <message>
            <source>Resync all</source>
            <translation>Перечитать все</translation>
        </message>
        <message>
            <source>Show problems</source>
            <translation>Показать проблемы</translation>
        </message>
        <message>
            <source>Quit</source>
            <translation>Выйти</translation>
        </message>
        <message>
            <source>Resume processing</source>
            <translation>Возобновить обработку</translation>
        </message>
        <message>
            <source>Pause processing</source>
            <translation>Приостановить обработку</translation>
        </message>
        <message>
            <source>Deal Monitor</source>
            <translation>Deal Monitor</translation>
        </message>
        <message>
            <source>All deals are synced</source>
            <translation>Все сделки синхронизированы</translation>
        </message>
        <message numerus="yes">
            <source>Processing paused: %n event(s) waiting</source>
            <translation>
                <numerusform>Обработка приостановлена: ждёт %n событие</numerusform>
                <numerusform>Обработка приостановлена: ждут %n события</numerusform>
                <numerusform>Обработка приостановлена: ждут %n событий</numerusform>
            </translation>
        </message>
        <message numerus="yes">
            <source>Syncing: %n event(s) waiting</source>
            <translation>
                <numerusform>Синхронизация: в очереди %n событие</numerusform>
                <numerusform>Синхронизация: в очереди %n события</numerusform>
                <numerusform>Синхронизация: в очереди %n событий</numerusform>
            </translation>
        </message>
        <message numerus="yes">
            <source>%n event(s) failed</source>
            <translation>
                <numerusform>%n событие с ошибкой</numerusform>
                <numerusform>%n события с ошибкой</numerusform>
                <numerusform>%n событий с ошибкой</numerusform>
            </translation>
        </message>
        <message>
            <source>Not receiving events</source>
            <translation>События не принимаются</translation>
        </message>
        <message>
            <source>The portal refuses the webhook</source>
            <translation>Портал отклоняет вебхук</translation>
        </message>
    </context>
</TS>