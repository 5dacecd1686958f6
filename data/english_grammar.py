"""Procedural English documents from a small hand-written grammar (no external text).

Five kinds of document: short stories with a problem and a resolution, animal facts,
animal quizzes (question/answer), tidy-up dialogues that track where things are, and
daily routines with clock times. Facts are consistent across the corpus (a fox always
lives in the forest, an owl is always smaller than a wolf), so a tiny model can learn
associations as well as grammar. `make_document(rng)` draws one document.
"""

from __future__ import annotations

import dataclasses
import random


@dataclasses.dataclass(frozen=True)
class Animal:
  name: str
  plural: str
  home: str
  food: str
  color: str
  sound: str
  skill: str


# Ordered from smallest to largest: comparisons are read off this order.
ANIMALS = (
    Animal("ant", "ants", "under the ground", "seeds and leaves", "black", "makes no sound",
           "carry things much heavier than themselves"),
    Animal("bee", "bees", "in a hive", "nectar from flowers", "yellow and black", "buzzes",
           "make honey"),
    Animal("mouse", "mice", "in a hole in the wall", "cheese and seeds", "grey", "squeaks",
           "hide in very small places"),
    Animal("frog", "frogs", "near the pond", "flies and bugs", "green", "croaks",
           "jump very far"),
    Animal("squirrel", "squirrels", "in the trees of the park", "nuts and acorns", "brown",
           "chatters", "climb tall trees"),
    Animal("rabbit", "rabbits", "in a burrow in the meadow", "carrots and grass", "white",
           "thumps its feet", "hop very quickly"),
    Animal("owl", "owls", "in a hollow tree", "mice and insects", "brown", "hoots",
           "see in the dark"),
    Animal("duck", "ducks", "on the lake", "water plants and snails", "white", "quacks",
           "swim and fly"),
    Animal("cat", "cats", "in houses with people", "fish and meat", "orange", "meows",
           "land on their feet"),
    Animal("fox", "foxes", "in the forest", "berries and mice", "red", "yips", "run fast"),
    Animal("penguin", "penguins", "on the ice near the sea", "fish", "black and white",
           "squawks", "swim very fast"),
    Animal("dog", "dogs", "in houses with people", "meat and bones", "brown", "barks",
           "smell things from far away"),
    Animal("goat", "goats", "on the farm", "grass and hay", "white", "bleats",
           "climb steep rocks"),
    Animal("sheep", "sheep", "on the farm", "grass", "white", "baas", "grow thick wool"),
    Animal("pig", "pigs", "on the farm", "corn and apples", "pink", "oinks",
           "find food with their noses"),
    Animal("wolf", "wolves", "in the mountains", "meat", "grey", "howls", "hunt in a pack"),
    Animal("deer", "deer", "in the forest", "grass and leaves", "brown", "grunts softly",
           "leap over fences"),
    Animal("dolphin", "dolphins", "in the sea", "fish", "grey", "clicks and whistles",
           "jump out of the water"),
    Animal("tiger", "tigers", "in the jungle", "meat", "orange with black stripes", "growls",
           "swim well"),
    Animal("lion", "lions", "on the savanna", "meat", "golden", "roars",
           "sleep for many hours a day"),
    Animal("bear", "bears", "in the forest", "fish and honey", "brown", "growls",
           "sleep all winter"),
    Animal("horse", "horses", "on the farm", "hay and apples", "brown", "neighs",
           "run for a long time"),
    Animal("cow", "cows", "on the farm", "grass", "black and white", "moos", "give milk"),
    Animal("camel", "camels", "in the desert", "dry plants", "tan", "grunts",
           "walk for days without water"),
    Animal("giraffe", "giraffes", "on the savanna", "leaves from tall trees",
           "yellow with brown spots", "hums", "reach the tops of trees"),
    Animal("elephant", "elephants", "on the savanna", "grass and fruit", "grey", "trumpets",
           "remember things for a long time"),
    Animal("whale", "whales", "in the ocean", "tiny fish and krill", "blue", "sings",
           "hold their breath for a long time"),
)

NAMES = (
    ("Mia", "she"), ("Tom", "he"), ("Lily", "she"), ("Ben", "he"), ("Anna", "she"),
    ("Sam", "he"), ("Zoe", "she"), ("Max", "he"), ("Emma", "she"), ("Leo", "he"),
    ("Ruby", "she"), ("Jack", "he"), ("Nora", "she"), ("Omar", "he"), ("Ivy", "she"),
    ("Finn", "he"), ("Maya", "she"), ("Theo", "he"), ("Lucy", "she"), ("Noah", "he"),
    ("Ella", "she"), ("Hugo", "he"), ("Rosa", "she"), ("Kai", "he"), ("Aria", "she"),
    ("Eli", "he"), ("Nina", "she"), ("Luca", "he"), ("Sara", "she"), ("Adam", "he"),
    ("Iris", "she"), ("Owen", "he"), ("Hana", "she"), ("Ravi", "he"), ("Tara", "she"),
    ("Yuki", "she"), ("Pablo", "he"), ("Amir", "he"), ("Lena", "she"), ("Jonah", "he"),
)
RELATIVES = ("mom", "dad", "grandma", "grandpa", "big sister", "big brother", "aunt", "uncle")
TRAITS = ("kind", "curious", "brave", "shy", "clever", "cheerful", "careful", "funny",
          "quiet", "busy")
WEATHER = ("sunny", "windy", "cloudy", "cold", "warm", "rainy", "snowy", "bright")
TIMES = ("morning", "afternoon", "evening", "day")
COLORS = ("red", "blue", "green", "yellow", "purple", "orange", "pink", "white", "black")
OBJECTS = ("ball", "kite", "hat", "book", "toy car", "scarf", "drum", "boat", "doll",
           "backpack", "umbrella", "puzzle", "cup", "bike", "blanket", "map", "robot")
CONTAINERS = ("box", "basket", "drawer", "bag", "cupboard", "bucket", "chest")
SURFACES = ("table", "shelf", "bed", "chair", "desk", "windowsill")
HIDING_PLACES = ("under the bed", "behind the door", "in the garden", "under a pile of leaves",
                 "inside the toy box", "next to the sofa", "on top of the fridge",
                 "in the car", "under the table")
# Place -> activities that happen there.
PLACES = {
    "park": ("fly a kite", "play on the swings", "feed the ducks", "kick a ball",
             "have a picnic"),
    "beach": ("build a sandcastle", "look for shells", "swim in the waves",
              "watch the boats"),
    "library": ("read a book about animals", "find a story about the sea",
                "listen to a story"),
    "farm": ("feed the goats", "milk the cows", "collect eggs", "ride a horse"),
    "garden": ("plant seeds", "water the flowers", "pick tomatoes", "dig for worms"),
    "forest": ("look for mushrooms", "follow a small path", "listen to the birds",
               "build a little hut"),
    "kitchen": ("bake a cake", "make soup", "cut fruit for a salad", "make pancakes"),
    "river": ("throw stones into the water", "catch a fish", "watch the fish",
              "sail a paper boat"),
    "market": ("buy apples", "sell lemonade", "find fresh bread", "look at the flowers"),
    "school": ("paint a picture", "sing a song", "learn about the stars", "play a game"),
    "hill": ("roll down the grass", "look at the town below", "fly a kite"),
    "zoo": ("see the lions", "watch the penguins swim", "feed the giraffes"),
}
INDOOR_PLACES = ("library", "kitchen", "school")
# Animals a child may meet on the way somewhere.
NEARBY_HOMES = ("in a hive", "near the pond", "in the trees of the park",
                "in a burrow in the meadow", "in a hollow tree", "on the lake",
                "in houses with people", "in the forest", "on the farm")
FEELINGS_GOOD = ("happy", "proud", "glad", "excited", "calm", "thankful")
FEELINGS_BAD = ("sad", "worried", "scared", "upset", "tired", "cross")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                "nine", "ten", "eleven", "twelve")
DAY_STEPS = (  # (earliest hour, activity); routines pick steps in this order.
    (6, "wakes up"), (7, "eats breakfast"), (7, "brushes {pos} teeth"),
    (8, "walks to school"), (9, "reads a book"), (10, "plays outside with {pos} friends"),
    (12, "eats lunch"), (13, "draws a picture"), (15, "goes to the {place}"),
    (16, "helps {pos} {relative}"), (17, "plays a game"), (18, "eats dinner"),
    (19, "takes a bath"), (20, "reads a story"), (21, "goes to bed"),
)


def article(word: str) -> str:
  return "an" if word[0] in "aeiou" else "a"


def capitalize(sentence: str) -> str:
  return sentence[0].upper() + sentence[1:]


@dataclasses.dataclass(frozen=True)
class Person:
  name: str
  subject: str  # he / she

  @property
  def possessive(self) -> str:
    return "his" if self.subject == "he" else "her"


def _people(rng: random.Random, count: int) -> list[Person]:
  return [Person(*p) for p in rng.sample(NAMES, count)]


def _story(rng: random.Random) -> str:
  """Setting -> wish -> problem -> help -> resolution -> feeling -> lesson."""
  hero, friend = _people(rng, 2)
  place = rng.choice(sorted(PLACES))
  activity = rng.choice(PLACES[place])
  thing = f"{rng.choice(COLORS)} {rng.choice(OBJECTS)}"
  relative = rng.choice(RELATIVES)
  he, his = hero.subject, hero.possessive
  opening = rng.choice((
      f"Once upon a time, there was a {rng.choice(TRAITS)} child named {hero.name}.",
      f"{hero.name} was a {rng.choice(TRAITS)} child who loved going to the {place}.",
      f"One {rng.choice(WEATHER)} {rng.choice(TIMES)}, {hero.name} went to the {place} "
      f"with {his} {relative}.",
      f"It was a {rng.choice(WEATHER)} {rng.choice(TIMES)}, and {hero.name} could not wait "
      f"to go to the {place}.",
  ))
  wish = rng.choice((f"{capitalize(he)} wanted to {activity}.",
                     f"{capitalize(he)} hoped to {activity} with {friend.name}.",
                     f"Today {he} planned to {activity}."))
  kind = rng.choice((0, 2, 3, 4) if place in INDOOR_PLACES else (0, 1, 2, 3, 4))
  if kind == 0:
    spot = rng.choice(HIDING_PLACES)
    problem = [f"But {he} could not find {his} {thing}.",
               f"{capitalize(he)} looked everywhere, and {he} felt "
               f"{rng.choice(FEELINGS_BAD)}."]
    help_ = [f'"I will help you look," said {friend.name}.',
             f"They searched together, and at last they found the {thing} {spot}."]
    lesson = rng.choice(("two friends can find what one friend cannot",
                         "it helps to ask a friend", "it is good to keep looking"))
  elif kind == 1:
    problem = ["Suddenly, dark clouds came and it started to rain.",
               f"{hero.name} felt {rng.choice(FEELINGS_BAD)} because {he} could not "
               f"{activity}."]
    help_ = [f"{capitalize(his)} {relative} said, \"Let us wait a little.\"",
             "Soon the rain stopped, and a rainbow appeared in the sky.",
             f"Then {hero.name} could {activity} after all."]
    lesson = rng.choice(("it is good to be patient", "bad weather does not last forever"))
  elif kind == 2:
    animal = rng.choice([a for a in ANIMALS if a.home in NEARBY_HOMES])
    problem = [f"On the way, {he} saw {article(animal.name)} {animal.name}.",
               f"The {animal.name} {animal.sound}, and {hero.name} felt scared."]
    help_ = [f'"Do not be afraid," said {friend.name}. "{capitalize(animal.plural)} live '
             f'{animal.home}, and they only want {animal.food}."',
             f"{hero.name} took a deep breath and watched the {animal.name} quietly.",
             f"After a while, the {animal.name} went away."]
    lesson = rng.choice(("being brave means doing something even when you are scared",
                         "learning about animals makes them less scary"))
  elif kind == 3:
    problem = [f"But {his} {thing} broke into two pieces.",
               f"{hero.name} was so {rng.choice(FEELINGS_BAD)} that {he} started to cry."]
    help_ = [f"{friend.name} came over with some tape.",
             f'"We can fix it together," {friend.subject} said.',
             f"They fixed the {thing}, and it worked again."]
    lesson = rng.choice(("broken things can often be fixed", "friends help each other"))
  else:
    count = rng.randrange(3, 9)
    problem = [f"{hero.name} had {NUMBER_WORDS[count]} cookies, and {friend.name} had none.",
               f"{friend.name} looked {rng.choice(FEELINGS_BAD)}."]
    half = count // 2
    help_ = [f"{hero.name} gave {NUMBER_WORDS[half]} cookies to {friend.name}.",
             f"Now {hero.name} had {NUMBER_WORDS[count - half]} cookies, and {friend.name} "
             f"had {NUMBER_WORDS[half]}.",
             f'"Thank you," said {friend.name}, and {friend.subject} smiled.']
    lesson = rng.choice(("sharing makes everyone happy", "it feels good to share"))
  feeling = rng.choice((f"{hero.name} felt {rng.choice(FEELINGS_GOOD)}.",
                        f"At the end of the day, {hero.name} was very "
                        f"{rng.choice(FEELINGS_GOOD)}.",
                        f"{hero.name} smiled and hugged {friend.name}."))
  ending = rng.choice((f"That day, {hero.name} learned that {lesson}.",
                       f"From then on, {hero.name} knew that {lesson}.",
                       f"{hero.name} went home and told {his} {relative} all about it.",
                       f"It was the best day {he} had ever had, and {he} went to sleep "
                       f"thinking about it."))
  return " ".join([opening, wish, *problem, *help_, feeling, ending])


def _compare(rng: random.Random, animal: Animal) -> str:
  index = ANIMALS.index(animal)
  other_index = rng.choice([i for i in range(len(ANIMALS)) if i != index])
  other = ANIMALS[other_index]
  relation = "bigger" if index > other_index else "smaller"
  return (f"{capitalize(article(animal.name))} {animal.name} is {relation} than "
          f"{article(other.name)} {other.name}.")


def _animal_facts(rng: random.Random) -> str:
  animal = rng.choice(ANIMALS)
  plural = capitalize(animal.plural)
  facts = [
      f"{plural} live {animal.home}.",
      f"{plural} eat {animal.food}.",
      f"{capitalize(article(animal.name))} {animal.name} {animal.sound}.",
      f"{plural} can {animal.skill}.",
      f"Most {animal.plural} are {animal.color}.",
      _compare(rng, animal),
      _compare(rng, animal),
  ]
  rng.shuffle(facts)
  title = rng.choice((f"All about the {animal.name}.", f"Facts about {animal.plural}.",
                      f"The {animal.name}."))
  return " ".join([title, *facts[:rng.randrange(3, len(facts) + 1)]])


def _animal_quiz(rng: random.Random) -> str:
  lines = []
  for animal in rng.sample(ANIMALS, rng.randrange(2, 5)):
    plural = capitalize(animal.plural)
    question, answer = rng.choice((
        (f"Where do {animal.plural} live?", f"{plural} live {animal.home}."),
        (f"What do {animal.plural} eat?", f"{plural} eat {animal.food}."),
        (f"What can {animal.plural} do?", f"{plural} can {animal.skill}."),
        (f"What color is {article(animal.name)} {animal.name}?",
         f"Most {animal.plural} are {animal.color}."),
    ))
    lines.append(f"Q: {question}\nA: {answer}")
  return "\n".join(lines)


def _tidy_up(rng: random.Random) -> str:
  """Two children move things around; every question is answered from the final state."""
  a, b = _people(rng, 2)
  things = rng.sample(OBJECTS, 3)
  spots = [("in", c) for c in rng.sample(CONTAINERS, 2)] + [
      ("on", s) for s in rng.sample(SURFACES, 2)]
  where = {}
  sentences = [f"{a.name} and {b.name} were tidying up {a.possessive} room."]
  for thing in things:
    where[thing] = rng.choice(spots)
    preposition, spot = where[thing]
    sentences.append(f"{rng.choice((a, b)).name} put the {thing} {preposition} the {spot}.")
  for _ in range(rng.randrange(1, 4)):
    thing = rng.choice(things)
    where[thing] = rng.choice([s for s in spots if s != where[thing]])
    sentences.append(f"Then {rng.choice((a, b)).name} moved the {thing} to the "
                     f"{where[thing][1]}.")
  thing = rng.choice(things)
  preposition, spot = where[thing]
  sentences.append(f'{b.name} asked, "Where is the {thing}?"')
  sentences.append(f'{a.name} said, "The {thing} is {preposition} the {spot}."')
  return " ".join(sentences)


def _routine(rng: random.Random) -> str:
  person = _people(rng, 1)[0]
  steps = sorted(rng.sample(DAY_STEPS, rng.randrange(4, 8)))
  sentences = [f"This is the day of {person.name}."]
  hour = 0
  for earliest, action in steps:
    hour = max(hour + 1, earliest)
    if hour > 22:
      break
    action = action.format(pos=person.possessive, place=rng.choice(sorted(PLACES)),
                           relative=rng.choice(RELATIVES))
    clock = f"{hour if hour <= 12 else hour - 12} o'clock"
    sentences.append(f"At {clock}, {person.name} {action}.")
  sentences.append(rng.choice((f"{capitalize(person.subject)} likes {person.possessive} days.",
                               "Then the day is over.", "Tomorrow will be another day.")))
  return " ".join(sentences)


_KINDS = ((_story, 5), (_animal_facts, 2), (_animal_quiz, 1), (_tidy_up, 2), (_routine, 1))


def make_document(rng: random.Random) -> str:
  """One document; stories are the most common kind."""
  makers, weights = zip(*_KINDS)
  return rng.choices(makers, weights=weights)[0](rng)
