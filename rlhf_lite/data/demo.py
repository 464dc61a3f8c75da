"""The project's own bilingual (English / Simplified Chinese) demo preference data.

Every step of the pipeline (SFT, reward model, PPO) needs data, and the public sets are large,
hub-hosted and mostly English. This module writes a small set that ships inside the package, so
the whole pipeline can run offline, on CPU, in minutes, with a 135M-parameter model:

* Format: DeepSpeed-Chat's ``local/jsonfile`` layout, a folder holding ``train.json`` and
  ``eval.json``, each a JSON list of ``{"prompt", "chosen", "rejected"}`` objects. Prompts follow
  DeepSpeed-Chat's convention ``"\\n\\nHuman: ...\\n\\nAssistant:"`` (a few are multi-turn) and
  each answer starts with one space, so ``prompt + answer`` is the exact text the models see.
* Content: every question, answer and fact is written here, from small tables and templates;
  nothing is copied from a public data set. Questions mix arithmetic, unit conversions, capitals,
  opposites and definitions, translation, colours, days and months, science, how-to advice,
  polite writing requests and short dialogues, in both languages.
* Preference: ``chosen`` is helpful, on-topic, correct and polite. ``rejected`` is one of several
  kinds of bad answer -- a polite but factually wrong answer (same template as the good one),
  an answer to a different question, a rude answer (sometimes rude *and* correct), a refusal of a
  harmless question, or rambling / near-empty filler. Mixing them keeps any single surface cue
  (length, a word, politeness markers, the presence of the right fact) from separating the pair
  on its own, so a reward model has to learn "helpful, correct and polite" to score well.
* Eval split: held out by *fact*, not by pair -- a country, word, number pair or how-to question
  that is asked in ``eval.json`` is never asked in ``train.json`` (in the same language), so eval
  accuracy measures generalisation rather than memorised prompts.
* Determinism: one seeded ``random.Random`` drives every choice and the JSON is written with
  stable ordering, so regenerating gives byte-identical files (a test checks the shipped ones).

Regenerate with ``python -m rlhf_lite.data.demo [--out DIR]``.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

SEED = 1234
EVAL_FRACTION = 0.14
DEFAULT_OUT = Path(__file__).parent / "demo"
LANGS = ("en", "zh")

# ================================================================ fact tables

# country, capital, a tempting wrong capital (often the best-known city) -- English, then Chinese.
CAPITALS = [
    ("France", "Paris", "Lyon", "法国", "巴黎", "里昂"),
    ("Germany", "Berlin", "Munich", "德国", "柏林", "慕尼黑"),
    ("Italy", "Rome", "Milan", "意大利", "罗马", "米兰"),
    ("Spain", "Madrid", "Barcelona", "西班牙", "马德里", "巴塞罗那"),
    ("Portugal", "Lisbon", "Porto", "葡萄牙", "里斯本", "波尔图"),
    ("the United Kingdom", "London", "Manchester", "英国", "伦敦", "曼彻斯特"),
    ("Ireland", "Dublin", "Cork", "爱尔兰", "都柏林", "科克"),
    ("Belgium", "Brussels", "Antwerp", "比利时", "布鲁塞尔", "安特卫普"),
    ("Austria", "Vienna", "Salzburg", "奥地利", "维也纳", "萨尔茨堡"),
    ("Switzerland", "Bern", "Zurich", "瑞士", "伯尔尼", "苏黎世"),
    ("Poland", "Warsaw", "Krakow", "波兰", "华沙", "克拉科夫"),
    ("Greece", "Athens", "Thessaloniki", "希腊", "雅典", "塞萨洛尼基"),
    ("Sweden", "Stockholm", "Gothenburg", "瑞典", "斯德哥尔摩", "哥德堡"),
    ("Norway", "Oslo", "Bergen", "挪威", "奥斯陆", "卑尔根"),
    ("Finland", "Helsinki", "Tampere", "芬兰", "赫尔辛基", "坦佩雷"),
    ("Denmark", "Copenhagen", "Aarhus", "丹麦", "哥本哈根", "奥胡斯"),
    ("Russia", "Moscow", "Saint Petersburg", "俄罗斯", "莫斯科", "圣彼得堡"),
    ("Hungary", "Budapest", "Debrecen", "匈牙利", "布达佩斯", "德布勒森"),
    ("the Czech Republic", "Prague", "Brno", "捷克", "布拉格", "布尔诺"),
    ("Japan", "Tokyo", "Osaka", "日本", "东京", "大阪"),
    ("China", "Beijing", "Shanghai", "中国", "北京", "上海"),
    ("South Korea", "Seoul", "Busan", "韩国", "首尔", "釜山"),
    ("India", "New Delhi", "Mumbai", "印度", "新德里", "孟买"),
    ("Thailand", "Bangkok", "Chiang Mai", "泰国", "曼谷", "清迈"),
    ("Vietnam", "Hanoi", "Ho Chi Minh City", "越南", "河内", "胡志明市"),
    ("the Philippines", "Manila", "Cebu", "菲律宾", "马尼拉", "宿务"),
    ("Egypt", "Cairo", "Alexandria", "埃及", "开罗", "亚历山大"),
    ("Kenya", "Nairobi", "Mombasa", "肯尼亚", "内罗毕", "蒙巴萨"),
    ("Nigeria", "Abuja", "Lagos", "尼日利亚", "阿布贾", "拉各斯"),
    ("Morocco", "Rabat", "Casablanca", "摩洛哥", "拉巴特", "卡萨布兰卡"),
    ("Turkey", "Ankara", "Istanbul", "土耳其", "安卡拉", "伊斯坦布尔"),
    ("Iran", "Tehran", "Isfahan", "伊朗", "德黑兰", "伊斯法罕"),
    ("Saudi Arabia", "Riyadh", "Jeddah", "沙特阿拉伯", "利雅得", "吉达"),
    ("Canada", "Ottawa", "Toronto", "加拿大", "渥太华", "多伦多"),
    ("the United States", "Washington, D.C.", "New York", "美国", "华盛顿", "纽约"),
    ("Mexico", "Mexico City", "Guadalajara", "墨西哥", "墨西哥城", "瓜达拉哈拉"),
    ("Cuba", "Havana", "Santiago de Cuba", "古巴", "哈瓦那", "圣地亚哥"),
    ("Brazil", "Brasília", "Rio de Janeiro", "巴西", "巴西利亚", "里约热内卢"),
    ("Argentina", "Buenos Aires", "Córdoba", "阿根廷", "布宜诺斯艾利斯", "科尔多瓦"),
    ("Peru", "Lima", "Cusco", "秘鲁", "利马", "库斯科"),
    ("Australia", "Canberra", "Sydney", "澳大利亚", "堪培拉", "悉尼"),
    ("New Zealand", "Wellington", "Auckland", "新西兰", "惠灵顿", "奥克兰"),
]

# big unit, small unit, how many small units make one big one (English singular/plural, Chinese).
UNITS = [
    ("kilometre", "kilometres", "metres", 1000, "千米", "米"),
    ("metre", "metres", "centimetres", 100, "米", "厘米"),
    ("centimetre", "centimetres", "millimetres", 10, "厘米", "毫米"),
    ("kilogram", "kilograms", "grams", 1000, "千克", "克"),
    ("litre", "litres", "millilitres", 1000, "升", "毫升"),
    ("hour", "hours", "minutes", 60, "小时", "分钟"),
    ("minute", "minutes", "seconds", 60, "分钟", "秒"),
    ("day", "days", "hours", 24, "天", "小时"),
    ("week", "weeks", "days", 7, "周", "天"),
    ("year", "years", "months", 12, "年", "个月"),
]

OPPOSITES = {
    "en": [("hot", "cold"), ("big", "small"), ("fast", "slow"), ("happy", "sad"),
           ("open", "closed"), ("early", "late"), ("full", "empty"), ("up", "down"),
           ("strong", "weak"), ("rich", "poor"), ("clean", "dirty"), ("wet", "dry"),
           ("thick", "thin"), ("wide", "narrow"), ("loud", "quiet"), ("cheap", "expensive"),
           ("true", "false"), ("win", "lose"), ("push", "pull"), ("inside", "outside"),
           ("above", "below"), ("always", "never"), ("buy", "sell"), ("remember", "forget"),
           ("accept", "refuse"), ("increase", "decrease"), ("safe", "dangerous"),
           ("arrive", "leave"), ("friend", "enemy"), ("entrance", "exit")],
    "zh": [("大", "小"), ("快", "慢"), ("冷", "热"), ("多", "少"), ("长", "短"), ("上", "下"),
           ("左", "右"), ("前", "后"), ("黑", "白"), ("胖", "瘦"), ("新", "旧"), ("早", "晚"),
           ("远", "近"), ("真", "假"), ("哭", "笑"), ("买", "卖"), ("进", "出"), ("喜欢", "讨厌"),
           ("成功", "失败"), ("安全", "危险"), ("干净", "肮脏"), ("简单", "复杂"),
           ("增加", "减少"), ("开始", "结束"), ("容易", "困难"), ("勇敢", "胆小"),
           ("快乐", "悲伤"), ("聪明", "愚蠢"), ("整齐", "凌乱"), ("热闹", "冷清")],
}

DEFINITIONS = {
    "en": [("generous", "willing to give or share more than is expected"),
           ("curious", "eager to know or learn about something"),
           ("ancient", "very old, from a time long ago"),
           ("fragile", "easily broken or damaged"),
           ("punctual", "arriving or doing something at the agreed time"),
           ("humble", "not proud, and not thinking you are better than other people"),
           ("enormous", "extremely large"),
           ("brave", "ready to face danger or difficulty without showing fear"),
           ("ordinary", "normal, not special or unusual"),
           ("exhausted", "extremely tired"),
           ("delicious", "having a very pleasant taste"),
           ("patient", "able to wait calmly without getting annoyed"),
           ("reliable", "able to be trusted to do what is expected"),
           ("temporary", "lasting only for a limited time"),
           ("honest", "truthful, and not willing to lie or cheat"),
           ("silent", "making no sound at all")],
    "zh": [("慷慨", "愿意把自己的东西或时间分给别人，一点也不小气"),
           ("好奇", "对不了解的事物很感兴趣，想弄明白"),
           ("古老", "经历了很长的年代，非常久远"),
           ("脆弱", "容易破碎或受到损伤"),
           ("守时", "按照约定的时间到达或完成事情"),
           ("谦虚", "不自满，愿意虚心听取别人的意见"),
           ("巨大", "非常大"),
           ("勇敢", "不怕危险和困难，有胆量"),
           ("平凡", "普通，不特别"),
           ("疲惫", "非常累，没有力气"),
           ("美味", "味道非常好"),
           ("耐心", "能够心平气和地等待或做事，不急躁"),
           ("可靠", "值得信赖，靠得住"),
           ("临时", "只在短时间内有效，不是长期的"),
           ("诚实", "说真话，不说谎也不欺骗"),
           ("安静", "没有声音或声音很小")],
}

# Chosen for having one obvious translation each way.
WORDS = [("apple", "苹果"), ("water", "水"), ("book", "书"), ("cat", "猫"), ("dog", "狗"),
         ("friend", "朋友"), ("school", "学校"), ("teacher", "老师"), ("hello", "你好"),
         ("thank you", "谢谢"), ("goodbye", "再见"), ("tea", "茶"), ("moon", "月亮"),
         ("sun", "太阳"), ("rain", "雨"), ("flower", "花"), ("tree", "树"), ("car", "汽车"),
         ("bread", "面包"), ("milk", "牛奶"), ("fish", "鱼"), ("bird", "鸟"), ("mother", "妈妈"),
         ("father", "爸爸"), ("computer", "电脑"), ("river", "河"), ("mountain", "山"),
         ("money", "钱"), ("egg", "鸡蛋"), ("door", "门"), ("window", "窗户"), ("chair", "椅子"),
         ("table", "桌子"), ("city", "城市"), ("doctor", "医生"), ("student", "学生"),
         ("sorry", "对不起"), ("horse", "马"), ("snow", "雪"), ("coffee", "咖啡")]

COLOURS = {
    "en": [("a ripe banana", "yellow"), ("fresh grass", "green"), ("the sky on a clear day", "blue"),
           ("fresh snow", "white"), ("coal", "black"), ("a ripe tomato", "red"),
           ("a carrot", "orange"), ("milk", "white"), ("a ripe lemon", "yellow"),
           ("a pumpkin", "orange"), ("a ripe strawberry", "red"), ("a crow", "black"),
           ("an emerald", "green"), ("an eggplant", "purple"), ("a flamingo", "pink"),
           ("a polar bear's fur", "white"), ("a canary", "yellow"),
           ("a cucumber's skin", "green"), ("chocolate", "brown"), ("a lime", "green"),
           ("a ripe cherry", "red"), ("a lump of charcoal", "black")],
    "zh": [("成熟的香蕉", "黄色"), ("新鲜的青草", "绿色"), ("晴天的天空", "蓝色"), ("刚下的雪", "白色"),
           ("煤炭", "黑色"), ("熟透的西红柿", "红色"), ("胡萝卜", "橙色"), ("牛奶", "白色"),
           ("柠檬", "黄色"), ("熟透的草莓", "红色"), ("乌鸦", "黑色"), ("翡翠", "绿色"),
           ("茄子", "紫色"), ("火烈鸟", "粉红色"), ("北极熊的毛", "白色"), ("向日葵的花瓣", "黄色"),
           ("黄瓜", "绿色"), ("巧克力", "棕色"), ("樱桃", "红色"), ("消防车", "红色")],
}
COLOUR_NAMES = {"en": ["yellow", "green", "blue", "white", "black", "red", "orange", "purple",
                       "pink", "brown"],
                "zh": ["黄色", "绿色", "蓝色", "白色", "黑色", "红色", "橙色", "紫色", "粉红色", "棕色"]}

DAYS = {"en": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
        "zh": ["星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日"]}
MONTHS = {"en": ["January", "February", "March", "April", "May", "June", "July", "August",
                 "September", "October", "November", "December"],
          "zh": ["一月", "二月", "三月", "四月", "五月", "六月", "七月", "八月", "九月", "十月",
                 "十一月", "十二月"]}
ORDINALS = {"en": ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
                   "ninth", "tenth", "eleventh", "twelfth"],
            "zh": ["第一", "第二", "第三", "第四", "第五", "第六", "第七", "第八", "第九", "第十",
                   "第十一", "第十二"]}

# question, good answer, wrong answer, the bare fact (for the rude-but-correct reply)
SCIENCE = {
    "en": [
        ("At what temperature does water boil at sea level?",
         "At sea level, water boils at 100 °C, which is 212 °F.",
         "At sea level, water boils at 50 °C, which is 122 °F.", "100 °C"),
        ("At what temperature does water freeze?", "Water freezes at 0 °C, or 32 °F.",
         "Water freezes at 10 °C, or 50 °F.", "0 °C"),
        ("What is the largest planet in our solar system?",
         "Jupiter is the largest planet in our solar system.",
         "Mercury is the largest planet in our solar system.", "Jupiter"),
        ("How many legs does a spider have?", "A spider has eight legs.",
         "A spider has six legs, just like an ant.", "eight"),
        ("How many legs does an insect have?", "Insects have six legs.",
         "Insects have ten legs.", "six"),
        ("What do plants need to make their own food?",
         "Plants use sunlight, water and carbon dioxide to make their own food. This process is "
         "called photosynthesis.",
         "Plants make their food from soil alone and do not need any light.", None),
        ("Which travels faster, light or sound?",
         "Light travels much faster than sound, which is why you see lightning before you hear "
         "the thunder.",
         "Sound travels much faster than light, which is why you hear thunder before you see "
         "the lightning.", "light"),
        ("What does the Moon orbit?", "The Moon orbits the Earth, going around it about once "
         "every 27 days.", "The Moon orbits Mars, going around it about once a year.", "the Earth"),
        ("How long does it take the Earth to go around the Sun?",
         "It takes the Earth about 365 days, or one year, to go around the Sun.",
         "It takes the Earth about 30 days, or one month, to go around the Sun.", "one year"),
        ("Which planet is known as the Red Planet?",
         "Mars is known as the Red Planet because of the reddish dust on its surface.",
         "Neptune is known as the Red Planet because of its red oceans.", "Mars"),
        ("What gas do we breathe out as waste?",
         "We breathe in oxygen and breathe out carbon dioxide as a waste gas.",
         "We breathe in carbon dioxide and breathe out oxygen as a waste gas.", "carbon dioxide"),
        ("What is the chemical formula for water?",
         "The chemical formula for water is H2O: two hydrogen atoms and one oxygen atom.",
         "The chemical formula for water is CO2: one carbon atom and two oxygen atoms.", "H2O"),
        ("Which organ pumps blood around the body?", "The heart pumps blood around the body.",
         "The stomach pumps blood around the body.", "the heart"),
        ("Can sound travel through space?",
         "No. Sound needs something like air or water to travel through, and space is almost a "
         "vacuum, so sound cannot travel there.",
         "Yes, sound travels even better in space, because there is no air to slow it down.",
         "no"),
        ("Why does ice float on water?",
         "Ice floats because it is less dense than liquid water.",
         "Ice floats because it is full of tiny balloons of helium.", None),
        ("What is the closest star to the Earth?", "The closest star to the Earth is the Sun.",
         "The closest star to the Earth is the Moon.", "the Sun"),
        ("How many continents are there?",
         "By the most common count, there are seven continents.",
         "There are exactly three continents.", "seven"),
        ("What do bees make from flower nectar?", "Bees turn flower nectar into honey.",
         "Bees turn flower nectar into milk.", "honey"),
        ("What kind of things do magnets attract?",
         "Magnets attract certain metals, such as iron, nickel and cobalt.",
         "Magnets attract wood, paper and plastic.", "iron"),
        ("What is the main gas in the Earth's atmosphere?",
         "Nitrogen is the main gas in the Earth's atmosphere; it makes up about 78% of the air.",
         "Oxygen is the main gas in the Earth's atmosphere; it makes up about 78% of the air.",
         "nitrogen"),
    ],
    "zh": [
        ("在标准大气压下，水的沸点是多少度？", "在标准大气压下，水的沸点是100摄氏度。",
         "在标准大气压下，水的沸点是50摄氏度。", "100摄氏度"),
        ("水在多少度时会结冰？", "水在0摄氏度时会结冰。", "水在20摄氏度时会结冰。", "0摄氏度"),
        ("太阳系中最大的行星是哪一颗？", "太阳系中最大的行星是木星。", "太阳系中最大的行星是水星。",
         "木星"),
        ("蜘蛛有几条腿？", "蜘蛛有八条腿。", "蜘蛛和蚂蚁一样，有六条腿。", "八条"),
        ("昆虫有几条腿？", "昆虫有六条腿。", "昆虫有十条腿。", "六条"),
        ("植物是怎样制造养分的？", "植物通过光合作用，利用阳光、水和二氧化碳来制造养分。",
         "植物只靠吸收泥土就能制造养分，完全不需要阳光。", None),
        ("光和声音哪个传播得更快？", "光比声音快得多，所以打雷时我们总是先看到闪电，再听到雷声。",
         "声音比光快得多，所以打雷时我们总是先听到雷声，再看到闪电。", "光"),
        ("月球绕着什么转？", "月球绕着地球转，大约二十七天转一圈。", "月球绕着火星转，大约一年转一圈。",
         "地球"),
        ("地球绕太阳一圈需要多长时间？", "地球绕太阳一圈大约需要365天，也就是一年。",
         "地球绕太阳一圈大约需要30天，也就是一个月。", "一年"),
        ("哪颗行星被称为“红色星球”？", "火星被称为“红色星球”，因为它的表面覆盖着红色的尘土。",
         "海王星被称为“红色星球”，因为它有红色的海洋。", "火星"),
        ("人呼出的废气主要是什么？", "人吸入氧气，呼出的废气主要是二氧化碳。",
         "人吸入二氧化碳，呼出的废气主要是氧气。", "二氧化碳"),
        ("水的化学式是什么？", "水的化学式是H2O，由两个氢原子和一个氧原子组成。",
         "水的化学式是CO2，由一个碳原子和两个氧原子组成。", "H2O"),
        ("人体中负责把血液输送到全身的器官是什么？", "心脏负责把血液输送到全身。",
         "胃负责把血液输送到全身。", "心脏"),
        ("声音能在太空中传播吗？", "不能。声音需要空气或水这样的介质才能传播，太空几乎是真空，所以声音无法传播。",
         "能，而且因为太空没有空气阻挡，声音在太空中传得更快。", "不能"),
        ("冰为什么会浮在水面上？", "因为冰的密度比液态水小，所以冰会浮在水面上。",
         "因为冰里面装满了氦气，所以冰会浮在水面上。", None),
        ("离地球最近的恒星是哪一颗？", "离地球最近的恒星是太阳。", "离地球最近的恒星是月亮。", "太阳"),
        ("世界上一共有几个大洲？", "按照最常见的划分，世界上一共有七个大洲。", "世界上一共只有三个大洲。",
         "七个"),
        ("蜜蜂用花蜜酿造什么？", "蜜蜂用花蜜酿造蜂蜜。", "蜜蜂用花蜜酿造牛奶。", "蜂蜜"),
        ("磁铁能吸引什么东西？", "磁铁能吸引铁、镍、钴等金属。", "磁铁能吸引木头、纸和塑料。", "铁"),
        ("地球大气中含量最多的气体是什么？", "地球大气中含量最多的气体是氮气，约占空气的百分之七十八。",
         "地球大气中含量最多的气体是氧气，约占空气的百分之七十八。", "氮气"),
    ],
}

# question, good advice, bad advice
HOWTO = {
    "en": [
        ("How can I fall asleep faster?",
         "Try going to bed at the same time every night, keep your bedroom dark and cool, and put "
         "your phone away about an hour before sleep.",
         "Drink a big cup of strong coffee right before bed and keep scrolling on your phone "
         "until you feel tired."),
        ("How do I cook rice on the stove?",
         "Rinse one cup of rice, add about one and a half cups of water, bring it to a boil, then "
         "cover it and simmer on low heat for about 15 minutes.",
         "Put the dry rice in a hot pan without any water and fry it on high heat for two "
         "minutes."),
        ("How can I study more effectively?",
         "Study in short, focused sessions, test yourself instead of just rereading, and review "
         "the material again a few days later.",
         "Read the whole textbook once the night before the exam and skip sleep; that is the "
         "most effective way."),
        ("How do I boil an egg?",
         "Put the egg into boiling water for about 7 minutes for a soft-centred yolk or 10 minutes "
         "for a hard one, then cool it in cold water.",
         "Put the egg in its shell into the microwave for five minutes on full power."),
        ("How should a beginner start exercising?",
         "Start with 20 to 30 minutes of brisk walking a few days a week, then slowly add light "
         "strength exercises as you get comfortable.",
         "Run a full marathon on your first day; starting hard is the only way to get fit."),
        ("How can I stay focused while working from home?",
         "Set up a dedicated workspace, keep a short to-do list for the day, and take a brief "
         "break every hour.",
         "Work from your bed with the TV on; background noise always helps you focus."),
        ("How do I make a cup of tea?",
         "Boil some water, pour it over a tea bag in a cup, let it steep for three to five "
         "minutes, then take the bag out and add milk or sugar if you like.",
         "Put the tea bag in cold tap water and drink it straight away."),
        ("How can I remember new vocabulary?",
         "Review new words a little every day, use them in sentences of your own, and test "
         "yourself with flashcards.",
         "Look at each word once and never review it; your memory keeps it automatically."),
        ("How can I drink more water during the day?",
         "Carry a refillable bottle, drink a glass with every meal, and set a few reminders on "
         "your phone.",
         "Only drink when you feel extremely thirsty; extra water is never needed."),
        ("How do I keep vegetables fresh for longer?",
         "Store most vegetables in the fridge's crisper drawer, keep them dry, and wash them only "
         "just before you use them.",
         "Leave them on a sunny windowsill; warmth keeps vegetables fresh."),
        ("What should I do before going for a run?",
         "Warm up for five to ten minutes with brisk walking or easy jogging and a few gentle leg "
         "swings.", "Sit still for an hour and then sprint as fast as you can with no warm-up."),
        ("How can I get better at waking up early?",
         "Move your bedtime 15 minutes earlier every few days, get some daylight in the morning, "
         "and put your alarm on the other side of the room.",
         "Stay up later every night; you will naturally start waking up earlier."),
        ("How do I make a simple salad?",
         "Wash and chop some lettuce, cucumber and tomatoes, then toss them with a little olive "
         "oil, lemon juice and a pinch of salt.",
         "Boil the lettuce for twenty minutes and then stir in a cup of sugar."),
        ("How can I prepare for a job interview?",
         "Research the company, practise answering common questions out loud, and prepare a "
         "couple of questions to ask the interviewer.",
         "Don't prepare at all, and arrive half an hour late so they remember you."),
        ("How can I calm down before an exam?",
         "Make a realistic revision plan, sleep well the night before, and take a few slow, deep "
         "breaths when you feel tense.",
         "Drink several energy drinks and stay awake all night worrying."),
        ("How should I stretch after exercise?",
         "Hold gentle stretches for your legs, back and shoulders for 20 to 30 seconds each, "
         "breathing slowly and never bouncing.",
         "Bounce as hard as you can into each stretch until it really hurts."),
        ("How should I store bread?",
         "Keep bread in a bread box or paper bag at room temperature for a few days, or freeze "
         "slices if you need it to last longer.",
         "Wrap it in a wet towel and keep it somewhere warm so it stays soft."),
        ("How can I take better notes in class?",
         "Write key ideas in your own words, use headings and short bullet points, and look over "
         "your notes again the same day.",
         "Copy every single word the teacher says and never look at your notes again."),
    ],
    "zh": [
        ("怎样才能更快入睡？", "尽量每天固定时间上床，保持卧室黑暗、凉爽，睡前一小时放下手机。",
         "睡前喝一大杯浓咖啡，再刷一会儿手机，困了自然就睡着了。"),
        ("用锅煮米饭要放多少水？", "一般一杯米配一杯半左右的水，大火煮开后盖上盖子，转小火焖十五分钟左右。",
         "不用放水，把米直接倒进热锅里大火干炒两分钟就行。"),
        ("怎样提高学习效率？", "可以把学习时间分成几段专注的时间，多用做题来检查自己，过几天再复习一遍。",
         "考试前一天晚上通宵把书全部看一遍，效率最高。"),
        ("怎么煮鸡蛋？", "把鸡蛋放进冷水锅里，水开后再煮八到十分钟，捞出来放进凉水里，这样更容易剥壳。",
         "把带壳的鸡蛋放进微波炉，高火加热五分钟。"),
        ("刚开始锻炼应该怎么做？", "可以先从每周三次、每次二三十分钟的快走开始，适应以后再慢慢增加强度。",
         "第一天就去跑全程马拉松，一开始就要练到极限。"),
        ("怎样泡一杯好喝的绿茶？", "用八十度左右的热水冲泡，不要用刚烧开的水，泡两三分钟就可以喝了。",
         "用冷水泡绿茶，再放进锅里煮半个小时。"),
        ("怎样记住更多英语单词？", "每天复习一点，用新单词自己造句，再用单词卡反复自测。",
         "每个单词看一遍就够了，以后不用再复习。"),
        ("怎样让自己每天多喝水？", "随身带一个水杯，每顿饭时喝一杯水，也可以在手机上设几个喝水提醒。",
         "只有渴得受不了的时候才喝水，平时完全不用喝。"),
        ("蔬菜怎样保存才能放得更久？", "大部分蔬菜可以放进冰箱的保鲜层，保持干燥，吃之前再清洗。",
         "把蔬菜放在阳光直射的窗台上，温度越高越新鲜。"),
        ("跑步前需要做什么准备？", "跑步前先快走或慢跑五到十分钟热身，再做几个简单的拉伸动作。",
         "不用热身，坐了一整天以后直接全力冲刺就行。"),
        ("怎样才能早点起床？", "每隔几天把睡觉时间提前十五分钟，早上拉开窗帘晒晒太阳，把闹钟放在离床远一点的地方。",
         "每天晚上越睡越晚，早上自然就能早起了。"),
        ("番茄炒蛋怎么做？", "先把鸡蛋打散炒熟盛出，再炒切块的番茄，炒出汁后倒回鸡蛋，加少许盐翻炒均匀就可以了。",
         "把整个番茄和没打开的鸡蛋一起放进锅里，加一碗糖煮一个小时。"),
        ("面试前应该怎么准备？", "先了解这家公司，提前练习回答常见问题，再准备一两个想问面试官的问题。",
         "什么都不用准备，故意迟到半小时，让面试官记住你。"),
        ("考试前很紧张怎么办？", "可以制定一个合理的复习计划，考前一晚好好睡觉，紧张时慢慢做几次深呼吸。",
         "考前喝好几罐功能饮料，整晚不睡觉，一直想着考砸了怎么办。"),
        ("运动后怎样拉伸？", "运动后可以对腿部、背部和肩膀做温和的拉伸，每个动作保持二三十秒，注意不要用力弹振。",
         "拉伸时要用力弹振，一直拉到非常疼为止。"),
        ("面包应该怎么保存？", "面包可以装在纸袋或面包盒里常温放两三天，想放久一点可以切片后冷冻。",
         "把面包包在湿毛巾里，放在温暖的地方，这样能一直保持松软。"),
        ("上课怎样记笔记更好？", "用自己的话记下重点，多用小标题和简短的要点，当天课后再看一遍。",
         "把老师说的每一个字都抄下来，以后再也不用看。"),
        ("怎样保护眼睛？", "看屏幕时每隔二十分钟看一看远处，注意光线充足，并保证足够的睡眠。",
         "在黑暗的房间里一直盯着手机看，眼睛会越练越好。"),
    ],
}

# Writing help: there is no "wrong fact" here, only rude, refusing, off-topic or rambling replies.
REQUESTS = {
    "en": [
        ("Can you help me write a thank-you note to my teacher?",
         "Of course! Here's one: \"Dear Ms. Lee, thank you for your patience and encouragement "
         "this year. Your lessons made me enjoy learning, and I'm truly grateful. Best wishes, "
         "Sam.\""),
        ("Could you write a short birthday message for my friend?",
         "Sure! \"Happy birthday! I hope your day is full of laughter, good food and the people "
         "you love. Here's to another great year!\""),
        ("Please help me apologise to a friend for being late.",
         "Here's a simple message: \"I'm really sorry I was late today. I know your time matters, "
         "and I'll leave earlier next time. Thank you for waiting for me.\""),
        ("Can you write a message inviting my coworker to lunch?",
         "Sure: \"Hi Alex, would you like to have lunch together this Friday? There's a new "
         "noodle place nearby I'd love to try. Let me know!\""),
        ("Could you help me congratulate my sister on her new job?",
         "Of course: \"Congratulations on your new job! You worked so hard for this, and they are "
         "lucky to have you. I'm so proud of you!\""),
        ("Can you write a get-well-soon note for my neighbour?",
         "Here you go: \"Dear Mr. Chen, I was sorry to hear you've been unwell. Wishing you a "
         "quick recovery, and please let me know if you need anything.\""),
        ("Please write a short thank-you message to a friend who invited me to dinner.",
         "Sure: \"Thank you so much for dinner last night. The food was delicious and I really "
         "enjoyed our conversation. Next time it's my treat!\""),
        ("Can you help me ask my manager for a day off?",
         "Here's a polite draft: \"Hi Maria, I'd like to request a day off next Monday for a "
         "personal matter. My tasks are on track and I'll make sure everything is covered. "
         "Thank you!\""),
        ("Could you write a welcome message for a new team member?",
         "Sure: \"Welcome to the team, Jordan! We're excited to have you with us. If you have any "
         "questions, just ask; we're happy to help.\""),
        ("Can you help me write a goodbye note to a colleague who is leaving?",
         "Of course: \"It has been a pleasure working with you. Thank you for all your help and "
         "good humour. Best of luck in your new role, and please keep in touch!\""),
        ("Please help me thank my neighbour for watering my plants.",
         "Here's a short note: \"Thank you so much for watering my plants while I was away. They "
         "look wonderful! Let me know if I can ever return the favour.\""),
        ("Can you write a few words to cheer up a friend who failed an exam?",
         "Sure: \"I'm sorry the exam didn't go the way you hoped. One result doesn't define you, "
         "and I know you can do it next time. I'm here if you want to talk.\""),
    ],
    "zh": [
        ("能帮我给老师写一段感谢的话吗？", "当然可以：“王老师，谢谢您这一年来的耐心教导和鼓励，您的课让我爱上了学习。祝您身体健康，工作顺利！”"),
        ("帮我写一句给朋友的生日祝福吧。", "好的：“生日快乐！愿你新的一岁每天都开开心心，身边总有爱你的人陪伴。”"),
        ("我和朋友见面迟到了，能帮我写一段道歉的话吗？", "可以这样说：“真不好意思，今天让你等了这么久。我知道你的时间很宝贵，下次我一定提前出门。谢谢你的耐心！”"),
        ("帮我写一条邀请同事一起吃午饭的消息。", "好的：“小李，这周五中午一起吃个饭吧？附近新开了一家面馆，想和你一起去尝尝。”"),
        ("我姐姐找到了新工作，帮我写句祝贺的话。", "当然：“恭喜你找到新工作！这是你努力的结果，我真为你骄傲，祝你工作顺利！”"),
        ("邻居生病了，帮我写一张慰问卡片吧。", "好的：“陈叔叔，听说您身体不舒服，希望您早日康复。如果需要帮忙，请随时告诉我。”"),
        ("去朋友家吃完饭后，怎么写一条感谢消息？", "可以这样写：“谢谢你昨晚的款待，饭菜特别好吃，聊天也很开心。下次换我请你！”"),
        ("能帮我写一段向经理请假的话吗？", "好的，可以参考：“张经理，您好！我下周一因私事需要请假一天，手头的工作已经安排好了，谢谢您的理解。”"),
        ("帮我写一段欢迎新同事的话。", "好的：“欢迎小王加入我们团队！很高兴和你一起工作，有任何问题都可以随时来问我们。”"),
        ("同事要离职了，帮我写几句告别的话。", "当然：“和你共事的这段时间非常愉快，谢谢你一直以来的帮助。祝你在新的岗位上一切顺利，常联系！”"),
        ("邻居帮我浇了花，我想谢谢她，该怎么说？", "可以这样说：“谢谢您在我出门这段时间帮我浇花，花都长得很好！以后有需要帮忙的地方，尽管开口。”"),
        ("朋友考试没考好，帮我写几句安慰的话。", "好的：“这次没考好也没关系，一次成绩说明不了什么。我相信你下次一定可以的，想聊天随时找我。”"),
    ],
}

# Short dialogues: earlier turns (human, assistant, human), good reply, wrong reply (or None).
DIALOGUES = {
    "en": [
        (["I'm going to bake cookies for the first time.",
          "That sounds fun! Do you already have a recipe?", "Not yet. What basic ingredients do I need?"],
         "For simple cookies you usually need butter, sugar, flour, eggs, a little baking soda and a "
         "pinch of salt. Chocolate chips are a nice extra.",
         "You only need water and salt; cookies never contain flour or sugar."),
        (["I have an exam next week.", "Good luck! Which subject is it?", "Maths. How should I revise?"],
         "Work through practice problems, note which topics you get wrong, and spend extra time on "
         "those. Short daily sessions work better than one long cram.",
         "Don't revise at all; maths is something you can't prepare for."),
        (["Can you suggest a quick breakfast?", "Sure! Oatmeal with fruit is quick and healthy.",
          "How do I make it?"],
         "Simmer half a cup of oats in about a cup of milk or water for a few minutes, stirring, then "
         "top it with sliced banana or berries.",
         "Eat the dry oats straight from the bag with a spoonful of salt; they never need cooking."),
        (["I'd like to write a thank-you card to my coach.",
          "That's a lovely idea. What would you like to thank them for?",
          "For helping me prepare for my first race."],
         "How about: \"Dear Coach, thank you for all your help getting me ready for my first race. "
         "Your advice and encouragement made all the difference!\"", None),
        (["I haven't been sleeping well lately.",
          "I'm sorry to hear that. Has anything changed in your routine?",
          "I've started drinking coffee in the evening."],
         "Caffeine can keep you awake for hours, so try having your last coffee before early "
         "afternoon and see whether your sleep improves.",
         "Evening coffee is great for sleep; try drinking even more of it before bed."),
        (["I want to start learning Chinese.", "Great choice! Are you a complete beginner?",
          "Yes. Where should I start?"],
         "Start with pinyin and the four tones, then learn a few common words and phrases every day. "
         "Listening to simple dialogues helps a lot too.",
         "Start by memorising a thick dictionary from A to Z before you listen to anything."),
    ],
    "zh": [
        (["我想第一次自己做饼干。", "听起来很有意思！你有食谱了吗？", "还没有。需要准备哪些基本材料？"],
         "做简单的饼干一般需要黄油、糖、面粉、鸡蛋，再加一点小苏打和少许盐，喜欢的话还可以加巧克力豆。",
         "只需要水和盐就够了，饼干里从来不放面粉和糖。"),
        (["我下周有考试。", "祝你好运！是哪一门呢？", "数学。我该怎么复习？"],
         "多做练习题，把经常出错的知识点记下来重点复习。每天复习一会儿，比考前突击效果好得多。",
         "数学根本没法复习，什么都不用做。"),
        (["能推荐一个简单的早餐吗？", "当然！燕麦粥加水果又快又健康。", "怎么做呢？"],
         "把半杯燕麦和一杯左右的牛奶或水一起小火煮几分钟，边煮边搅拌，最后放上香蕉片或浆果就可以了。",
         "直接从袋子里抓一把生燕麦，拌一勺盐吃，燕麦从来不用煮。"),
        (["我想给我的教练写一张感谢卡。", "这个想法很好！你想感谢他什么呢？", "感谢他帮我准备第一次比赛。"],
         "可以这样写：“教练，谢谢您帮我做好第一次比赛的准备，您的指导和鼓励对我帮助很大！”", None),
        (["我最近睡得不太好。", "听到这个我很遗憾。你的作息最近有什么变化吗？", "我开始在晚上喝咖啡了。"],
         "咖啡因的作用会持续好几个小时，建议你把最后一杯咖啡提前到中午之前，看看睡眠会不会好一些。",
         "晚上喝咖啡对睡眠很好，睡前可以再多喝几杯。"),
        (["我想开始学英语。", "很好的选择！你是零基础吗？", "是的，应该从哪里开始？"],
         "可以先学字母和基本发音，每天记几个常用单词和短句，再多听一些简单的英语对话。",
         "先把一本厚厚的词典从头背到尾，背完之前什么都不要听。"),
    ],
}

# ================================================================ how answers go wrong

TOPICS = {
    "en": {"arith": "maths", "units": "measurement", "capital": "geography", "opposite": "word",
           "define": "word", "translate": "language", "colour": "colour", "calendar": "calendar",
           "science": "science", "howto": "everyday", "request": "writing", "dialogue": "personal"},
    "zh": {"arith": "数学", "units": "单位换算", "capital": "地理", "opposite": "词语",
           "define": "词语", "translate": "翻译", "colour": "颜色", "calendar": "日历",
           "science": "科学", "howto": "生活", "request": "写作", "dialogue": "个人"},
}

RUDE = {
    "en": ["Figure it out yourself.", "Why are you asking me? Look it up.",
           "That's a silly question.", "Ugh, not this again. Go away.",
           "I have better things to do than answer you.",
           "Seriously? Even a child knows this. Stop wasting my time with such basic questions "
           "and go read a book.",
           "Nobody cares. Ask someone else.", "Do your own homework for once.",
           "Whatever. I'm not in the mood to help you today, so don't bother asking again.",
           "Use your brain, it's not that hard.",
           "Wow, you really can't work this out on your own? That's embarrassing. Try harder "
           "before you come to me."],
    "zh": ["自己想去。", "这种问题也来问我？自己查去。", "这问题太蠢了。", "烦死了，别来烦我。",
           "我没空回答你这种问题。", "不是吧？连小孩都知道。别拿这么简单的问题浪费我的时间，自己去翻书吧。",
           "谁在乎啊，问别人去。", "作业自己做，别老指望别人。", "随便吧，我今天不想帮你，别再问了。",
           "动动脑子好不好，这有什么难的。", "这都不会？真丢人。先自己好好想想，再来找我。"],
}
# Right answer, wrong manner: teaches that correctness alone is not enough.
RUDE_CORRECT = {
    "en": ["It's {x}, obviously. Don't bother me with such easy stuff.",
           "{x}. Anyone could tell you that, so stop asking me silly questions.",
           "Ugh, fine: {x}. Now leave me alone.", "Are you serious? It's {x}. Everyone knows that."],
    "zh": ["{x}啊，这还用问？别拿这么简单的问题烦我。", "{x}。这谁不知道，别再问这种傻问题了。",
           "行吧，{x}。问完了就别烦我了。", "你认真的吗？{x}，大家都知道。"],
}
# Polite but unhelpful: teaches that politeness alone is not enough.
REFUSALS = {
    "en": ["I'm sorry, but I can't help with that.", "I'm afraid I can't answer that question.",
           "Sorry, I'm not able to assist with this request.",
           "I'd prefer not to answer that. Perhaps you could ask someone else.",
           "As an AI assistant, I'm unable to provide that kind of information. I apologise for "
           "any inconvenience, and I hope you understand.",
           "Unfortunately, I can't help with {topic} questions. Is there anything else you'd like "
           "to talk about?",
           "I'm sorry, I can't do that. It's not something I'm able to discuss.",
           "Thank you for your question, but I must decline to answer it. Please consult a "
           "qualified professional instead."],
    "zh": ["抱歉，我无法回答这个问题。", "对不起，这个请求我帮不了。", "很抱歉，我不能提供这方面的帮助。",
           "这个问题我不太方便回答，你可以去问问别人。",
           "作为一个人工智能助手，我无法提供这类信息。给你带来不便，深表歉意，希望你能理解。",
           "不好意思，我不能回答{topic}方面的问题。还有其他我可以帮你的吗？",
           "抱歉，这不是我可以讨论的内容。", "感谢你的提问，但我必须拒绝回答，建议你咨询相关的专业人士。"],
}
RAMBLES = {
    "en": ["Hmm.", "I don't know.", "Um...", "Okay.", "Maybe.",
           "Well, {topic} questions are interesting. People have thought about things like this for "
           "a very long time, and there are many opinions, so it really depends on how you look "
           "at it.",
           "That reminds me of something I read once, although I can't remember where. Anyway, "
           "there are lots of things to consider, and it's hard to say, really.",
           "Questions like this are always fun. Some people love them and some don't, and I think "
           "that's what makes the world such a varied place.",
           "Let me think. There's a lot one could say, from so many angles, and honestly it could "
           "go either way. It's complicated.",
           "Interesting. The weather has been nice lately, hasn't it? I was thinking of going for a "
           "walk later.", "Good question! Lots of people wonder about that."],
    "zh": ["嗯……", "我不知道。", "这个嘛……", "好的。", "也许吧。",
           "{topic}问题都挺有意思的。人们思考这类事情已经很久了，观点也各不相同，关键还是看你怎么理解。",
           "这让我想起以前看过的一篇文章，不过我记不清在哪儿看的了。总之，要考虑的东西很多，真的很难说。",
           "这类问题总是很有趣，有人喜欢，有人不喜欢，我觉得这正是世界丰富多彩的地方。",
           "让我想想。能说的东西太多了，角度也很多，说实话怎么样都有可能，挺复杂的。",
           "有意思。最近天气不错，对吧？我正打算待会儿出去散散步。", "好问题！很多人都想知道这个。"],
}
# Roughly half the rejected answers (wrong facts, other questions' answers) are as long as a good
# answer; rude replies run shorter and rambling longer, so length alone cannot tell them apart.
N_EMPTY = 5  # the first RAMBLES of each language are near-empty
TWIN = 0.6
# Wrong facts and other questions' answers are kept rare: telling them apart takes knowledge a
# 135M reward model trained for a few CPU minutes lacks (about 0.7 accuracy on them, ~1.0 on the rest).
KIND_WEIGHTS = {"wrong": 8, "off_topic": 12, "rude": 28, "refusal": 26, "ramble": 26}

PREFIXES = {"en": ["", "", "", "Sure! ", "Good question. ", "Of course. "],
            "zh": ["", "", "", "好的！", "当然。", "这个问题问得好。"]}
SUFFIXES = {"en": ["", "", "", "", " Hope that helps!", " Let me know if you have other questions.",
                   " Happy to help with anything else."],
            "zh": ["", "", "", "", "希望对你有帮助！", "如果还有其他问题，随时问我。", "还有什么需要帮忙的，尽管说。"]}


@dataclass
class Item:
    category: str
    turns: list[str]  # human, assistant, human, ... ending with a human turn
    chosen: str
    wrong: str | None = None  # polite, on-topic, but incorrect
    short: str | None = None  # the bare correct fact, for the rude-but-correct reply

    @property
    def prompt(self) -> str:
        return "".join(f"\n\n{'Human' if i % 2 == 0 else 'Assistant'}: {t}"
                       for i, t in enumerate(self.turns)) + "\n\nAssistant:"


def _dress(lang, text, rng):
    # The same dressing goes on good and wrong answers, so pleasantries don't mark the good one.
    return rng.choice(PREFIXES[lang]) + text + rng.choice(SUFFIXES[lang])


def _answers(render, good, bad, rng):
    """The good answer and a polite wrong one, each ``render(value, rng)``.

    Most often both come from the same template with the same pleasantries (a "twin"), so the
    fact is the only difference and the two are equally long; otherwise they are drawn apart.
    """
    seed, twin = rng.random(), rng.random() < TWIN
    return render(good, random.Random(seed)), render(bad, random.Random(seed) if twin else rng)


def _tidy(text):
    return text.replace("D.C..", "D.C.")  # "Washington, D.C." at the end of a sentence


def _num(lang, n):
    return f"{n:,}" if lang == "en" else str(n)


def _cap(s):
    return s[:1].upper() + s[1:]


# ================================================================ question builders
# Each takes the facts of one split and returns its Items; a few facts become dialogues.

OPS = {"+": ("plus", "加", lambda a, b: a + b), "-": ("minus", "减", lambda a, b: a - b),
       "×": ("times", "乘以", lambda a, b: a * b), "÷": ("divided by", "除以", lambda a, b: a // b)}
ARITH_Q = {
    "en": {"+": ["What is {a} + {b}?", "What is {a} plus {b}?", "Can you add {a} and {b} for me?",
                 "Calculate {a} + {b}.", "What do you get when you add {a} and {b}?"],
           "-": ["What is {a} - {b}?", "What is {a} minus {b}?",
                 "What do you get if you subtract {b} from {a}?", "Calculate {a} - {b}, please."],
           "×": ["What is {a} × {b}?", "What is {a} times {b}?", "What is {a} multiplied by {b}?",
                 "Calculate {a} × {b}."],
           "÷": ["What is {a} ÷ {b}?", "What is {a} divided by {b}?",
                 "How many times does {b} go into {a}?"]},
    "zh": {"+": ["{a} 加 {b} 等于多少？", "{a} + {b} 等于几？", "请帮我算一下 {a} + {b}。",
                 "{a} 和 {b} 相加是多少？"],
           "-": ["{a} 减 {b} 等于多少？", "{a} - {b} 是多少？", "请计算 {a} - {b}。",
                 "从 {a} 里减去 {b}，还剩多少？"],
           "×": ["{a} 乘以 {b} 等于多少？", "{a} × {b} 是多少？", "请算一下 {a} 乘 {b}。"],
           "÷": ["{a} 除以 {b} 等于多少？", "{a} ÷ {b} 是多少？", "{a} 里面有几个 {b}？"]},
}
ARITH_A = {"en": ["{a} {op} {b} = {c}.", "The answer is {c}.", "{a} {word} {b} equals {c}.",
                  "{a} {op} {b} equals {c}.", "It's {c}."],
           "zh": ["{a} {op} {b} = {c}。", "答案是 {c}。", "{a} {word} {b} 等于 {c}。", "结果是 {c}。",
                  "等于 {c}。"]}
FOLLOW_UPS = {"en": {"×": ["Now multiply that by {k}.", "And if you multiply that by {k}?"],
                     "+": ["What if I add {k} to that?", "And plus {k}?"],
                     "-": ["Now subtract {k} from that.", "And if I take away {k}?"]},
              "zh": {"×": ["再乘以 {k} 呢？", "那再乘 {k} 是多少？"],
                     "+": ["那再加上 {k} 是多少？", "再加 {k} 呢？"],
                     "-": ["然后减去 {k} 呢？", "再减 {k} 是多少？"]}}


def _arith_answer(lang, a, op, b, c, rng, explain=False):
    word = OPS[op][0 if lang == "en" else 1]
    if explain:  # a worked step, only ever on good answers, so length varies among them
        if op == "+" and a >= 10 and b >= 10:
            ta, oa, tb, ob = a // 10 * 10, a % 10, b // 10 * 10, b % 10
            return (f"Add the tens, then the ones: {ta} + {tb} = {ta + tb} and {oa} + {ob} = "
                    f"{oa + ob}, so {a} + {b} = {c}." if lang == "en" else
                    f"先算十位：{ta} + {tb} = {ta + tb}，再算个位：{oa} + {ob} = {oa + ob}，"
                    f"所以 {a} + {b} = {c}。")
        if op == "-":
            return (f"{a} - {b} = {c}. You can check it: {c} + {b} = {a}." if lang == "en" else
                    f"{a} - {b} = {c}。验算一下：{c} + {b} = {a}。")
        if op == "÷":
            return (f"{a} ÷ {b} = {c}, because {b} × {c} = {a}." if lang == "en" else
                    f"{a} ÷ {b} = {c}，因为 {b} × {c} = {a}。")
    return _dress(lang, rng.choice(ARITH_A[lang]).format(a=a, b=b, c=c, op=op, word=word), rng)


def _off_by(c, rng):
    return max(0, c + rng.choice([-10, -2, -1, 1, 2, 10])) or c + 1


def arithmetic_facts(rng):
    facts, seen = [], set()
    plan = [("+", 22), ("-", 18), ("×", 18), ("÷", 12)]
    for op, n in plan:
        while sum(f[0] == op for f in facts) < n:
            if op == "+":
                a, b = rng.randint(11, 99), rng.randint(2, 99)
            elif op == "-":
                a = rng.randint(30, 99)
                b = rng.randint(3, a - 5)
            elif op == "×":
                a, b = rng.randint(3, 25), rng.randint(2, 12)
            else:
                b, q = rng.randint(2, 12), rng.randint(2, 15)
                a = b * q
            if (op, a, b) not in seen:
                seen.add((op, a, b))
                facts.append((op, a, b))
    return facts


def build_arith(lang, facts, rng):
    items = []
    for i, (op, a, b) in enumerate(facts):
        c = OPS[op][2](a, b)
        q = rng.choice(ARITH_Q[lang][op]).format(a=a, b=b)
        if i % 7 == 6:  # a follow-up that depends on the previous answer
            op2 = rng.choice(["×", "+", "-"] if c > 6 else ["×", "+"])
            k = rng.randint(2, {"×": 5, "+": 20, "-": min(20, c - 1)}[op2])
            d = OPS[op2][2](c, k)
            turns = [q, f"{a} {op} {b} = {c}" + ("." if lang == "en" else "。"),
                     rng.choice(FOLLOW_UPS[lang][op2]).format(k=k)]
            good, bad = _answers(lambda x, r: _arith_answer(lang, c, op2, k, x, r), d,
                                 _off_by(d, rng), rng)
            items.append(Item("arith", turns, good, bad, str(d)))
            continue
        good, bad = _answers(lambda x, r: _arith_answer(lang, a, op, b, x, r), c, _off_by(c, rng), rng)
        if rng.random() < 0.25:  # a worked step, only ever on good answers
            good = _arith_answer(lang, a, op, b, c, rng, explain=True)
        items.append(Item("arith", [q], good, bad, str(c)))
    return items


def unit_facts(rng):
    facts = []
    for u in range(len(UNITS)):
        for direction in ("down", "up"):
            for n in rng.sample(range(2, 10), 2):
                facts.append((u, direction, n))
    return facts


def _units_answer(lang, u, direction, n, m, f, rng):
    """``n`` big units are ``m`` small ones, as ``1 big = f small`` (all three true or not)."""
    big, bigs, smalls, _, zbig, zsmall = UNITS[u]
    explain = rng.random() < 0.3 and f is not None
    if lang == "en":
        big_n = f"{_num(lang, n)} {bigs}"
        small_m = f"{_num(lang, m)} {smalls}"
        if explain:
            return f"Since 1 {big} is {_num(lang, f)} {smalls}, {big_n} is {small_m}." \
                if direction == "down" else \
                f"Since 1 {big} is {_num(lang, f)} {smalls}, {small_m} is {big_n}."
        forms = ([f"{big_n} is {small_m}.", f"There are {small_m} in {big_n}.", f"That's {small_m}."]
                 if direction == "down" else
                 [f"{small_m} is {big_n}.", f"{_cap(small_m)} equals {big_n}.", f"That's {big_n}."])
    else:
        if explain:
            return (f"因为1{zbig}等于{f}{zsmall}，所以{n}{zbig}等于{m}{zsmall}。" if direction == "down"
                    else f"因为1{zbig}等于{f}{zsmall}，所以{m}{zsmall}等于{n}{zbig}。")
        forms = ([f"{n}{zbig}等于{m}{zsmall}。", f"{n}{zbig}是{m}{zsmall}。", f"一共是{m}{zsmall}。"]
                 if direction == "down" else
                 [f"{m}{zsmall}等于{n}{zbig}。", f"{m}{zsmall}是{n}{zbig}。", f"正好是{n}{zbig}。"])
    return _dress(lang, rng.choice(forms), rng)


def build_units(lang, facts, rng):
    items = []
    for u, direction, n in facts:
        big, bigs, smalls, f, zbig, zsmall = UNITS[u]
        m = n * f
        if lang == "en":
            qs = ([f"How many {smalls} are in {n} {bigs}?", f"Convert {n} {bigs} to {smalls}."]
                  if direction == "down" else
                  [f"How many {bigs} is {_num(lang, m)} {smalls}?",
                   f"Convert {_num(lang, m)} {smalls} to {bigs}."])
        else:
            qs = ([f"{n}{zbig}等于多少{zsmall}？", f"{n}{zbig}有多少{zsmall}？"] if direction == "down"
                  else [f"{m}{zsmall}等于多少{zbig}？", f"{m}{zsmall}换算成{zbig}是多少？"])
        # Wrong: the conversion factor of some other pair of units (the classic slip).
        factors = [x for x in (10, 100, 1000, 60, 24, 7, 12) if x != f]
        if direction == "down":
            bad_f = rng.choice(factors)
            bad_v = (n, n * bad_f, bad_f)
            short = f"{_num(lang, m)} {smalls}" if lang == "en" else f"{m}{zsmall}"
        else:
            factors = [x for x in factors if m % x == 0 and m // x != n]
            bad_f = rng.choice(factors) if factors else None
            bad_v = (m // bad_f, m, bad_f) if bad_f else (n + 1, m, None)
            short = f"{n} {bigs}" if lang == "en" else f"{n}{zbig}"
        good_v = (n, m, f)
        good, bad = _answers(lambda v, r: _units_answer(lang, u, direction, *v, r), good_v, bad_v, rng)
        items.append(Item("units", [rng.choice(qs)], good, bad, short))
    return items


def build_capitals(lang, facts, rng):
    en = lang == "en"
    ask = (["What is the capital of {c}?", "Which city is the capital of {c}?",
            "What's the capital city of {c}?", "Do you know the capital of {c}?"] if en else
           ["{c}的首都是哪里？", "{c}的首都是哪座城市？", "你知道{c}的首都吗？", "请问{c}的首都在哪儿？"])
    say = (["The capital of {c} is {x}.", "{x} is the capital of {c}.", "It's {x}."] if en else
           ["{c}的首都是{x}。", "{x}是{c}的首都。", "是{x}。"])
    follow = ["What about {c}?", "And {c}?", "And what is the capital of {c}?"] if en else \
        ["那{c}呢？", "{c}的首都呢？", "那{c}的首都是哪里？"]
    items = []
    for i, fact in enumerate(facts):
        country, capital, tempting = (fact[0], fact[1], fact[2]) if en else (fact[3], fact[4], fact[5])
        def answer(x, r, _c=country):
            return _dress(lang, _cap(r.choice(say).format(c=_c, x=x)), r)
        if i % 6 == 5:  # the follow-up only makes sense with the earlier turn in view
            prev = facts[i - 1]
            pc, px = (prev[0], prev[1]) if en else (prev[3], prev[4])
            turns = [rng.choice(ask).format(c=pc),
                     _cap(say[0].format(c=pc, x=px)), rng.choice(follow).format(c=country)]
            # Repeating the previous turn's city is the typical context mistake.
            good, bad = _answers(answer, capital, rng.choice([px, tempting]), rng)
            items.append(Item("capital", turns, good, bad, capital))
            continue
        good, bad = _answers(answer, capital, tempting, rng)
        items.append(Item("capital", [rng.choice(ask).format(c=country)], good, bad, capital))
    return items


def build_opposites(lang, facts, rng):
    pool = [o for _, o in OPPOSITES[lang]]
    if lang == "en":
        ask = ["What is the opposite of '{w}'?", "What's the opposite of {w}?",
               "Give me the opposite of the word '{w}'.", "Which word means the opposite of '{w}'?"]
        say = ["The opposite of '{w}' is '{o}'.", "It's '{o}'.", "Its opposite is '{o}'.",
               "The word you're looking for is '{o}'."]
    else:
        ask = ["“{w}”的反义词是什么？", "请说出“{w}”的反义词。", "和“{w}”意思相反的词是什么？"]
        say = ["“{w}”的反义词是“{o}”。", "是“{o}”。", "“{w}”和“{o}”是一对反义词。"]
    items = []
    for w, o in facts:
        bad = rng.choice([p for p in pool if p != o])
        good, bad = _answers(lambda x, r: _dress(lang, r.choice(say).format(w=w, o=x), r), o, bad, rng)
        items.append(Item("opposite", [rng.choice(ask).format(w=w)], good, bad, o))
    return items


def build_definitions(lang, facts, rng):
    pool = [d for _, d in DEFINITIONS[lang]]
    if lang == "en":
        ask = ["What does '{w}' mean?", "What is the meaning of the word '{w}'?",
               "Can you tell me what '{w}' means?"]
        say = ["'{W}' means {d}.", "The word '{w}' means {d}.", "It means {d}."]
    else:
        ask = ["“{w}”是什么意思？", "请解释一下“{w}”这个词。", "“{w}”这个词怎么理解？"]
        say = ["“{w}”的意思是{d}。", "“{w}”这个词指的是{d}。", "“{w}”就是{d}的意思。"]
    items = []
    for w, d in facts:
        bad = rng.choice([p for p in pool if p != d])
        good, bad = _answers(lambda x, r: _dress(lang, r.choice(say).format(w=w, W=_cap(w), d=x), r),
                             d, bad, rng)
        items.append(Item("define", [rng.choice(ask).format(w=w)], good, bad))
    return items


def build_translation(lang, facts, rng):
    en_pool, zh_pool = [e for e, _ in WORDS], [z for _, z in WORDS]
    items = []
    for i, (e, z) in enumerate(facts):
        to_chinese = i % 2 == 0  # both directions, asked in either language
        if lang == "en":
            if to_chinese:
                ask = ["How do you say '{e}' in Chinese?", "What is the Chinese word for '{e}'?"]
                say = ["In Chinese, '{e}' is {z}.", "The Chinese word for '{e}' is {z}.",
                       "You say {z}."]
                follow = "And '{e}'?"
            else:
                ask = ["What does {z} mean in English?", "What is {z} in English?"]
                say = ["{z} means '{e}' in English.", "In English, {z} means '{e}'.", "It means '{e}'."]
                follow = "And {z}?"
        else:
            if to_chinese:
                ask = ["英语里的“{e}”是什么意思？", "“{e}”翻译成中文是什么？"]
                say = ["“{e}”的意思是“{z}”。", "“{e}”翻译成中文是“{z}”。", "是“{z}”的意思。"]
                follow = "那“{e}”呢？"
            else:
                ask = ["“{z}”用英语怎么说？", "“{z}”的英文是什么？"]
                say = ["“{z}”的英文是 {e}。", "“{z}”用英语说是 {e}。", "英语里说 {e}。"]
                follow = "那“{z}”呢？"
        bad_e = rng.choice([x for x in en_pool if x != e])
        bad_z = zh_pool[en_pool.index(bad_e)]
        # Wrong answers keep the asked word and give another word's translation.
        def fill(pair, r, _say=say, _to=to_chinese, _e=e, _z=z):
            ee, zz = (_e, pair[1]) if _to else (pair[0], _z)
            return _dress(lang, r.choice(_say).format(e=ee, z=zz), r)
        short = z if to_chinese else e
        short = f"“{short}”" if lang == "zh" else short
        if i % 8 == 7:
            pe, pz = facts[i - 2]  # same direction as this one
            turns = [rng.choice(ask).format(e=pe, z=pz), say[0].format(e=pe, z=pz),
                     follow.format(e=e, z=z)]
            good, bad = _answers(fill, (e, z), (pe, pz), rng)
            items.append(Item("translate", turns, good, bad, short))
            continue
        good, bad = _answers(fill, (e, z), (bad_e, bad_z), rng)
        items.append(Item("translate", [rng.choice(ask).format(e=e, z=z)], good, bad, short))
    return items


def build_colours(lang, facts, rng):
    if lang == "en":
        ask = ["What colour is {t}?", "Can you tell me what colour {t} is?", "Which colour is {t}?"]
        say = ["{T} is {c}.", "{T} is usually {c}.", "It's {c}."]
    else:
        ask = ["{t}是什么颜色的？", "{t}通常是什么颜色？"]
        say = ["{t}是{c}的。", "{t}通常是{c}的。", "是{c}的。"]
    items = []
    for t, c in facts:
        bad = rng.choice([x for x in COLOUR_NAMES[lang] if x != c])
        good, bad = _answers(lambda x, r: _dress(lang, r.choice(say).format(t=t, T=_cap(t), c=x), r),
                             c, bad, rng)
        items.append(Item("colour", [rng.choice(ask).format(t=t)], good, bad, c))
    return items


def calendar_facts(rng):
    facts = [(k, i) for k in ("day_after", "day_before") for i in range(7)]
    facts += [(k, i) for k in ("month_after", "month_before", "month_nth") for i in range(12)]
    return rng.sample(facts, 34)


CALENDAR = {
    "en": {"day_after": (["What day comes after {d}?", "If today is {d}, what day is tomorrow?"],
                         ["The day after {d} is {x}.", "It's {x}.", "{x} comes right after {d}."]),
           "day_before": (["What day comes before {d}?", "If today is {d}, what day was yesterday?"],
                          ["The day before {d} is {x}.", "It's {x}.", "{x} comes just before {d}."]),
           "month_after": (["Which month comes after {d}?", "What month follows {d}?"],
                           ["The month after {d} is {x}.", "{x} comes after {d}.", "It's {x}."]),
           "month_before": (["Which month comes before {d}?", "What month is just before {d}?"],
                            ["The month before {d} is {x}.", "{x} comes before {d}.", "It's {x}."]),
           "month_nth": (["What is the {d} month of the year?", "Which month is the {d} month?"],
                         ["The {d} month of the year is {x}.", "It's {x}.", "{x} is the {d} month."])},
    "zh": {"day_after": (["{d}的后一天是星期几？", "如果今天是{d}，明天是星期几？"],
                         ["{d}的后一天是{x}。", "是{x}。", "{d}过完就是{x}。"]),
           "day_before": (["{d}的前一天是星期几？", "如果今天是{d}，昨天是星期几？"],
                          ["{d}的前一天是{x}。", "是{x}。"]),
           "month_after": (["{d}的下一个月是几月？", "{d}过后是几月？"],
                           ["{d}的下一个月是{x}。", "是{x}。", "{d}之后是{x}。"]),
           "month_before": (["{d}的上一个月是几月？", "{d}之前的那个月是几月？"],
                            ["{d}的上一个月是{x}。", "是{x}。"]),
           "month_nth": (["一年中的{d}个月是几月？", "一年里{d}个月是哪个月？"],
                         ["一年中的{d}个月是{x}。", "是{x}。"])},
}


def build_calendar(lang, facts, rng):
    items = []
    for kind, i in facts:
        names = DAYS[lang] if kind.startswith("day") else MONTHS[lang]
        step = 1 if kind in ("day_after", "month_after") else -1
        if kind == "month_nth":
            d, x, bad = ORDINALS[lang][i], names[i], names[(i + rng.choice([-1, 1])) % 12]
        else:  # going the wrong way round the week is the classic slip
            d, x, bad = names[i], names[(i + step) % len(names)], names[(i - step) % len(names)]
        ask, say = CALENDAR[lang][kind]
        good, bad = _answers(lambda y, r: _dress(lang, _cap(r.choice(say).format(d=d, x=y)), r),
                             x, bad, rng)
        items.append(Item("calendar", [rng.choice(ask).format(d=d)], good, bad, x))
    return items


def build_science(lang, facts, rng):
    return [Item("science", [q], *_answers(lambda t, r: _dress(lang, t, r), good, bad, rng), short)
            for q, good, bad, short in facts]


def build_howto(lang, facts, rng):
    return [Item("howto", [q], *_answers(lambda t, r: _dress(lang, t, r), good, bad, rng))
            for q, good, bad in facts]


def build_requests(lang, facts, rng):
    return [Item("request", [q], note) for q, note in facts]


def build_dialogues(lang, facts, rng):
    return [Item("dialogue", list(turns), good, bad) for turns, good, bad in facts]


def _categories(lang, rng):
    """(builder, facts) per category; the facts are split before anything is phrased."""
    return [(build_arith, arithmetic_facts(rng)), (build_units, unit_facts(rng)),
            (build_capitals, CAPITALS), (build_opposites, OPPOSITES[lang]),
            (build_definitions, DEFINITIONS[lang]), (build_translation, WORDS),
            (build_colours, COLOURS[lang]), (build_calendar, calendar_facts(rng)),
            (build_science, SCIENCE[lang]), (build_howto, HOWTO[lang]),
            (build_requests, REQUESTS[lang]), (build_dialogues, DIALOGUES[lang])]


# ================================================================ assembling the pairs

def _rejected(lang, item, pool, rng):
    kinds = [k for k in KIND_WEIGHTS if k != "wrong" or item.wrong]
    kind = rng.choices(kinds, weights=[KIND_WEIGHTS[k] for k in kinds])[0]
    topic = TOPICS[lang][item.category]
    if kind == "wrong":
        return kind, item.wrong
    if kind == "off_topic":  # a good answer -- to some other question, and about as long
        others = rng.sample([o for o in pool if o.category != item.category], 4)
        return kind, min(others, key=lambda o: abs(len(o.chosen) - len(item.chosen))).chosen
    if kind == "rude":
        if item.short and rng.random() < 0.35:
            return "rude_correct", rng.choice(RUDE_CORRECT[lang]).format(x=item.short)
        return kind, rng.choice(RUDE[lang])
    if kind == "refusal":
        return kind, rng.choice(REFUSALS[lang]).format(topic=topic)
    i = rng.randrange(len(RAMBLES[lang]))
    return ("empty" if i < N_EMPTY else "ramble"), RAMBLES[lang][i].format(topic=topic)


def _build(seed=SEED):
    """Rows per split, each with its language and rejected kind (used by the counts)."""
    rng = random.Random(seed)
    splits = {"train": [], "eval": []}
    for lang in LANGS:
        by_split = {"train": [], "eval": []}
        for build, facts in _categories(lang, rng):
            facts = list(facts)
            rng.shuffle(facts)
            n_eval = max(1, round(len(facts) * EVAL_FRACTION))
            by_split["eval"] += build(lang, facts[:n_eval], rng)
            by_split["train"] += build(lang, facts[n_eval:], rng)
        for split, items in by_split.items():
            # Off-topic answers come from the same split, so eval answers never leak into train.
            for item in items:
                kind, rejected = _rejected(lang, item, items, rng)
                splits[split].append({"prompt": item.prompt, "chosen": " " + _tidy(item.chosen),
                                      "rejected": " " + _tidy(rejected), "_lang": lang,
                                      "_kind": kind, "_fact": item.short})
    for rows in splits.values():
        rng.shuffle(rows)  # interleaves the two languages and the categories
    _check(splits)
    return splits


def _check(splits):
    prompts = {s: {r["prompt"] for r in rows} for s, rows in splits.items()}
    assert not prompts["train"] & prompts["eval"], "an eval question is also in train"
    for rows in splits.values():
        assert len({r["prompt"] for r in rows}) == len(rows), "duplicate prompt"
        for r in rows:
            assert r["prompt"].startswith("\n\nHuman: ") and r["prompt"].endswith("\n\nAssistant:")
            assert r["chosen"] != r["rejected"], r
            for key in ("chosen", "rejected"):
                assert r[key].startswith(" ") and not r[key].startswith("  ") and r[key].strip()


def _public(rows):
    return [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in rows]


def generate_demo_pairs():
    """Return ``(train_rows, eval_rows)``: lists of ``{"prompt", "chosen", "rejected"}``."""
    splits = _build()
    return _public(splits["train"]), _public(splits["eval"])


def write_demo_data(out_dir=DEFAULT_OUT) -> dict:
    """Write ``train.json`` and ``eval.json`` into ``out_dir`` and the eval split's answer key
    (``{"prompt", "answer"}`` for every question with one short right answer) beside it, as
    ``<out_dir>_eval_facts.json`` (inside, the loader would take it for a split); return row counts."""
    splits = _build()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    key = [{"prompt": r["prompt"], "answer": r["_fact"]} for r in splits["eval"] if r["_fact"]]
    files = {out.with_name(f"{out.name}_eval_facts.json"): key} | {
        out / f"{split}.json": _public(rows) for split, rows in splits.items()}
    for path, content in files.items():
        text = json.dumps(content, ensure_ascii=False, indent=1) + "\n"
        path.write_text(text, encoding="utf-8", newline="\n")
    for split, rows in splits.items():
        counts[split] = {"total": len(rows),
                         **{lang: sum(r["_lang"] == lang for r in rows) for lang in LANGS},
                         "rejected_kinds": dict(sorted(Counter(r["_kind"] for r in rows).items()))}
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m rlhf_lite.data.demo",
                                     description="Write the bilingual demo preference data set.")
    parser.add_argument("--out", default=str(DEFAULT_OUT),
                        help="output folder (default: the package's own data/demo/)")
    args = parser.parse_args(argv)
    counts = write_demo_data(args.out)
    for split, c in counts.items():
        print(f"{split}: {c['total']} pairs (en {c['en']}, zh {c['zh']}); "
              f"rejected kinds {c['rejected_kinds']}")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
